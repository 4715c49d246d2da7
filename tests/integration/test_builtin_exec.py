"""exec of an extra process into a running built-in container: it joins the
container's namespaces and cgroups, gets the given user, caps and cwd, and
the container's seccomp filter."""
from __future__ import annotations

import copy
import os
from pathlib import Path

import pytest

from crio_native.errors import FailedPrecondition

pytestmark = pytest.mark.root


def _exec(rt, cid, process, tmp_path) -> tuple[int, str]:
    out = tmp_path / f"exec-{os.urandom(4).hex()}"
    with open(out, "w+") as f:
        pid = rt.exec(cid, process, stdio=(-1, f.fileno(), f.fileno()))
        _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), out.read_text()


def _process(spec, args, **changes):
    p = copy.deepcopy(spec["process"])
    p["args"] = args
    p.update(changes)
    return p


def test_exec_sees_the_container(rt, make_bundle, tmp_path):
    def edit(spec):
        spec["linux"]["cgroupsPath"] = f"crn-exec-{os.getpid()}"
        spec["linux"]["namespaces"].append({"type": "cgroup"})
    b = make_bundle(["sh", "-c", "echo inside > /tmp/mark; exec sleep 60"], edit)
    b.spec["root"]["readonly"] = False
    b.write()
    rt.create("ex", b.path)
    rt.start("ex")
    init = rt.state("ex")["pid"]
    script = ("hostname; ps -o pid,comm | grep -c sleep; readlink /proc/self/ns/net; "
              "cat /proc/self/cgroup | head -1; sleep 0.2; cat /tmp/mark; pwd; id -u")
    code, out = _exec(rt, "ex", _process(b.spec, ["sh", "-c", script], cwd="/tmp",
                                          user={"uid": 1000, "gid": 1000}), tmp_path)
    assert code == 0, out
    lines = out.splitlines()
    assert lines[0] == "crn" and lines[1] == "1"
    assert lines[2] == os.readlink(f"/proc/{init}/ns/net")
    assert lines[3].endswith(":/")          # rooted at the container's group
    assert lines[4:] == ["inside", "/tmp", "1000"]
    host_cgroup = Path(f"/proc/{init}/cgroup").read_text()
    assert f"crn-exec-{os.getpid()}" in host_cgroup
    rt.delete("ex", force=True)


def test_exec_exit_code_caps_and_missing_binary(rt, make_bundle, tmp_path):
    b = make_bundle(["sleep", "60"])
    rt.create("ex2", b.path)
    rt.start("ex2")
    code, out = _exec(rt, "ex2", _process(b.spec, ["sh", "-c",
                      "grep -E '^(CapEff|NoNewPrivs)' /proc/self/status; exit 9"]), tmp_path)
    assert code == 9
    assert out == "CapEff:\t0000000020000420\nNoNewPrivs:\t1\n"
    with pytest.raises(FailedPrecondition, match='exec: "nope": executable file not found'):
        rt.exec("ex2", _process(b.spec, ["nope"]))
    rt.delete("ex2", force=True)
    with pytest.raises(Exception):
        rt.exec("ex2", _process(b.spec, ["true"]))


def test_exec_into_stopped_container_fails(rt, make_bundle):
    b = make_bundle(["true"])
    rt.create("ex3", b.path)
    rt.start("ex3")
    rt.wait("ex3", timeout=10)
    with pytest.raises(FailedPrecondition, match="stopped"):
        rt.exec("ex3", _process(b.spec, ["true"]))
    rt.delete("ex3")
