"""crio_native._native.bpf: load a cgroup device program, attach it to a v2
group, list and detach it; a refused program carries the verifier's log.
Runs wherever a cgroup v2 hierarchy is mounted (a hybrid host's too: the
kernel runs the group's filter besides the v1 devices controller)."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from crio_native._native import bpf
from crio_native.errors import NativeError
from crio_native.linux import cgroups, devfilter

pytestmark = [pytest.mark.root, pytest.mark.vm]

DENY_KMSG = [{"allow": True, "access": "rwm"},
             {"allow": False, "type": "c", "major": 1, "minor": 11, "access": "rwm"}]


def _v2_group_parent() -> Path | None:
    for h, mount_root in cgroups.host_hierarchies():
        if h.version == 2:
            root = os.environ.get("CRIO_NATIVE_CGROUP_ROOT") or h.own_path(cgroups.own_cgroups())
            return h.dir_of(root, mount_root)
    return None


@pytest.fixture
def group():
    parent = _v2_group_parent()
    if parent is None:
        pytest.skip("no cgroup v2 hierarchy mounted")
    g = parent / f"crn-bpf-{os.getpid()}"
    g.mkdir()
    yield g
    g.rmdir()


def test_attach_query_detach(group):
    fd = bpf.prog_load(bpf.PROG_TYPE_CGROUP_DEVICE, devfilter.program_from_rules(DENY_KMSG),
                       "Apache", "crn_test")
    try:
        assert os.get_inheritable(fd) is False
        bpf.cgroup_attach(fd, group, bpf.CGROUP_DEVICE, bpf.F_ALLOW_MULTI)
    finally:
        os.close(fd)
    ids = bpf.cgroup_query(group, bpf.CGROUP_DEVICE)
    assert len(ids) == 1
    # a process in the group: /dev/null opens, /dev/kmsg does not
    probe = (f"echo $$ > {group}/cgroup.procs; head -c0 /dev/null && echo null-ok; "
             "head -c0 /dev/kmsg 2>&1")
    r = subprocess.run(["sh", "-c", probe], capture_output=True, text=True)
    assert r.stdout.startswith("null-ok\n") and "Operation not permitted" in r.stdout
    bpf.cgroup_detach(group, bpf.CGROUP_DEVICE, ids[0])
    assert bpf.cgroup_query(group, bpf.CGROUP_DEVICE) == []


def test_refused_program_carries_the_verifier_log():
    no_exit = devfilter.encode(devfilter._prologue())
    with pytest.raises(NativeError) as info:
        bpf.prog_load(bpf.PROG_TYPE_CGROUP_DEVICE, no_exit, "Apache")
    assert info.value.errno == 22
    assert "bpf BPF_PROG_LOAD" in info.value.strerror
    assert "verifier log:" in info.value.strerror


def test_missing_group_names_the_path(tmp_path):
    with pytest.raises(FileNotFoundError) as info:
        bpf.cgroup_query(tmp_path / "none", bpf.CGROUP_DEVICE)
    assert str(tmp_path / "none") in info.value.strerror


def test_bad_instruction_buffer():
    with pytest.raises(ValueError):
        bpf.prog_load(bpf.PROG_TYPE_CGROUP_DEVICE, b"\0" * 7, "Apache")
