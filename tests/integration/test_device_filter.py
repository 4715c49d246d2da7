"""Device cgroup rules enforced for real: through the v1 devices controller
on a hybrid host, and on pure cgroup v2 by the eBPF device filter the
built-in runtime attaches to the container's group (run in the vmrun.sh VM).

The probe device is /dev/kmsg (c 1:11), which is not among the standard
devices every container may use; the container gets CAP_SYSLOG so that the
device cgroup is the only thing that can refuse opening it (EPERM)."""
from __future__ import annotations

import copy
import os
from pathlib import Path

import pytest

from crio_native.errors import FailedPrecondition
from crio_native.linux import cgroups, devfilter

pytestmark = [pytest.mark.root, pytest.mark.vm]

KMSG = {"path": "/dev/kmsg", "type": "c", "major": 1, "minor": 11, "fileMode": 0o644,
        "uid": 0, "gid": 0}
DENY_ALL = {"allow": False, "access": "rwm"}
PROBE = "if (exec 3</dev/kmsg); then echo opened; fi"
EPERM_TEXT = "Operation not permitted"


def _enforceable() -> bool:
    hs = cgroups.host_hierarchies()
    return cgroups.pure_v2(hs) or any(h.version == 1 and "devices" in h.controllers
                                      for h, _ in hs)


needs_enforcement = pytest.mark.skipif(
    not _enforceable(), reason="a hybrid host without the v1 devices controller: the built-in "
                               "runtime cannot enforce device cgroup rules there")


def _with_devices(name: str, cgroups_path, rules: list[dict], node: dict = KMSG,
                  caps: tuple[str, ...] = ("CAP_SYSLOG",)):
    def edit(spec):
        spec["linux"]["cgroupsPath"] = cgroups_path(name)
        spec["linux"]["devices"] = [node]
        spec["linux"]["resources"] = {"devices": copy.deepcopy(rules)}
        for key in ("bounding", "effective", "permitted"):
            spec["process"]["capabilities"][key] += list(caps)
    return edit


@needs_enforcement
@pytest.mark.parametrize("rules,opened", [
    pytest.param([DENY_ALL], False, id="deny-all"),
    pytest.param([DENY_ALL, {"allow": True, "type": "c", "major": 1, "minor": 11, "access": "r"}],
                 True, id="allowed-r"),
    pytest.param([DENY_ALL, {"allow": True, "type": "c", "major": 1, "minor": 11, "access": "w"}],
                 False, id="write-only"),
    pytest.param([DENY_ALL, {"allow": True, "type": "c", "major": 1, "access": "rwm"}],
                 True, id="minor-wildcard"),
    pytest.param([DENY_ALL, {"allow": True, "type": "c", "major": 1, "minor": 11,
                             "access": "rwm"},
                  {"allow": False, "type": "c", "major": 1, "minor": 11, "access": "r"}],
                 False, id="later-deny-wins"),
    # v1 ignores a deny that would punch a hole in a wildcard exception (runc's
    # v2 emulator refuses such a list); the eBPF filter lets the last match win
    pytest.param([DENY_ALL, {"allow": True, "type": "c", "major": 1, "access": "rwm"},
                  {"allow": False, "type": "c", "major": 1, "minor": 11, "access": "r"}],
                 False, id="later-deny-in-wildcard", marks=pytest.mark.requires_cgroup2),
    pytest.param([{"allow": True, "access": "rwm"}], True, id="allow-all"),
])
def test_rules_decide_the_open(builtin, make_bundle, cgroups_path, rules, opened):
    edit = _with_devices(f"crn-devf-{os.getpid()}", cgroups_path, rules)
    r = builtin.run(make_bundle(["sh", "-c", PROBE + "; head -c1 /dev/null && echo null-ok"],
                                edit))
    assert r.out == ("opened\n" if opened else "") + "null-ok\n", r.err
    assert (EPERM_TEXT in r.err) is not opened


@pytest.mark.requires_cgroup2
def test_filter_attached_before_the_process_runs(rt, make_bundle, cgroups_path):
    from crio_native._native import bpf

    name = f"crn-devf-attach-{os.getpid()}"
    edit = _with_devices(name, cgroups_path, [DENY_ALL])
    rt.create("devf1", make_bundle(["sleep", "60"], edit).path)
    group = cgroups.plan_cgroups(cgroups_path(name), {}, root=rt.cgroup_root).into
    try:
        pid = rt.state("devf1")["pid"]
        assert str(pid) in (group / "cgroup.procs").read_text().split()
        assert len(bpf.cgroup_query(group, bpf.CGROUP_DEVICE)) == 1
    finally:
        rt.delete("devf1", force=True)
    assert not group.exists()


@pytest.mark.requires_cgroup2
def test_update_replaces_the_filter(rt, make_bundle, cgroups_path, tmp_path):
    from crio_native._native import bpf

    name = f"crn-devf-update-{os.getpid()}"
    bundle = make_bundle(["sleep", "60"], _with_devices(name, cgroups_path, [DENY_ALL]))
    rt.create("devf2", bundle.path)
    group = cgroups.plan_cgroups(cgroups_path(name), {}, root=rt.cgroup_root).into
    try:
        rt.start("devf2")
        before = bpf.cgroup_query(group, bpf.CGROUP_DEVICE)
        assert _exec_probe(rt, "devf2", bundle.spec, tmp_path) == EPERM_TEXT
        rt.update("devf2", {"devices": [DENY_ALL, {"allow": True, "type": "c", "major": 1,
                                                   "minor": 11, "access": "r"}]})
        after = bpf.cgroup_query(group, bpf.CGROUP_DEVICE)
        assert len(before) == len(after) == 1 and before != after
        assert _exec_probe(rt, "devf2", bundle.spec, tmp_path) == "opened"
    finally:
        rt.delete("devf2", force=True)


def _exec_probe(rt, cid: str, spec: dict, tmp_path: Path) -> str:
    out = tmp_path / f"exec-{os.urandom(4).hex()}"
    process = copy.deepcopy(spec["process"])
    process["args"] = ["sh", "-c", PROBE]
    with open(out, "w+") as f:
        pid = rt.exec(cid, process, stdio=(-1, f.fileno(), f.fileno()))
        os.waitpid(pid, 0)
    text = out.read_text()
    return "opened" if text == "opened\n" else EPERM_TEXT if EPERM_TEXT in text else text


@pytest.mark.requires_cgroup2
def test_refused_program_fails_create_and_leaves_nothing(rt, make_bundle, cgroups_path,
                                                         monkeypatch):
    """A program the kernel refuses (here: one without an exit) fails create
    with an error naming the field and carrying the verifier's log; the
    container's group and state are gone."""
    monkeypatch.setattr(devfilter, "program_from_rules",
                        lambda rules: devfilter.encode(devfilter._prologue()))
    name = f"crn-devf-bad-{os.getpid()}"
    bundle = make_bundle(["true"], _with_devices(name, cgroups_path, [DENY_ALL]))
    group = cgroups.plan_cgroups(cgroups_path(name), {}, root=rt.cgroup_root).into
    with pytest.raises(FailedPrecondition, match=r"linux\.resources\.devices: .*BPF_PROG_LOAD"
                                                 r"(.|\n)*verifier log"):
        rt.create("devf3", bundle.path)
    assert not group.exists()
    assert rt.list() == []


# ---- the lent GPU machine ---------------------------------------------------------

NVIDIACTL = {"path": "/dev/nvidiactl", "type": "c", "major": 195, "minor": 255,
             "fileMode": 0o666, "uid": 0, "gid": 0}


@pytest.mark.requires_gpu
@needs_enforcement
@pytest.mark.parametrize("allow", [True, False], ids=["allowed", "not-allowed"])
def test_nvidiactl_follows_the_rules(builtin, make_bundle, cgroups_path, allow):
    """/dev/nvidiactl in linux.devices opens for reading only when the rules
    allow c 195:255 rw; otherwise the device cgroup refuses it (EPERM)."""
    rules = [DENY_ALL] + ([{"allow": True, "type": "c", "major": 195, "minor": 255,
                            "access": "rw"}] if allow else [])
    edit = _with_devices(f"crn-devf-gpu-{os.getpid()}", cgroups_path, rules, node=NVIDIACTL,
                         caps=())
    probe = "if (exec 3</dev/nvidiactl); then echo opened; fi"
    r = builtin.run(make_bundle(["sh", "-c", probe], edit))
    if allow:
        assert r.out == "opened\n", r.err
    else:
        assert r.out == "" and EPERM_TEXT in r.err, r.err
