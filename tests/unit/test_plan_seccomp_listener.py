"""The SECCOMP_LISTENER record: the agent's socket and the container process
state (runtime-spec config-linux.md) cut where the child puts its pid."""
from __future__ import annotations

import copy
import json

from crio_native.runtime.builtin import container
from crio_native.runtime.builtin.plan import HostFacts, exec_records, plan_records
from crio_native.runtime.builtin.records import LAYOUTS, Rec, decode, encode
from crio_native.runtime.builtin.seccomp_listener import (OCI_VERSION, ListenerState,
                                                          process_state_from_parts,
                                                          process_state_parts)

HOST = HostFacts(last_cap=40, oom_score_adj=0, can_lower_oom=False)
SPEC = {
    "ociVersion": "1.2.0",
    "process": {"args": ["sh"], "env": ["PATH=/bin"], "cwd": "/", "noNewPrivileges": True},
    "root": {"path": "rootfs"},
    "annotations": {"k": "v\u00e9\u0000"},
    "linux": {"namespaces": [{"type": "mount"}, {"type": "pid"}],
              "seccomp": {"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "/run/agent.sock",
                          "listenerMetadata": "meta",
                          "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]}},
}


def _parts(record) -> list[str]:
    path, blob = record.fields
    assert blob.endswith(b"\0")
    return [p.decode() for p in blob[:-1].split(b"\0")]


def test_record_number_matches_plan_h():
    assert Rec.SECCOMP_LISTENER == 45 and LAYOUTS[Rec.SECCOMP_LISTENER] == "sb"
    assert OCI_VERSION == container.OCI_VERSION


def test_create_plan_carries_the_listener(tmp_path):
    (tmp_path / "rootfs").mkdir()
    recs = decode(encode(plan_records(copy.deepcopy(SPEC), tmp_path, host=HOST,
                                      container_id="c1")))
    [listener] = [r for r in recs if r.type == Rec.SECCOMP_LISTENER]
    assert listener.fields[0] == "/run/agent.sock"
    parts = _parts(listener)
    assert len(parts) == 3      # the pid goes in twice: "pid" and "state.pid"
    assert process_state_from_parts(parts, 4422) == {
        "ociVersion": OCI_VERSION, "fds": ["seccompFd"], "pid": 4422, "metadata": "meta",
        "state": {"ociVersion": OCI_VERSION, "id": "c1", "status": "creating", "pid": 4422,
                  "bundle": str(tmp_path), "annotations": {"k": "v\u00e9\u0000"}}}


def test_exec_plan_tells_the_running_container(tmp_path):
    state = {"ociVersion": "1.2.0", "id": "c1", "status": "running", "pid": 10,
             "bundle": "/b", "annotations": {"k": "v"}, "_start_time": 5}
    recs = exec_records(copy.deepcopy(SPEC), {"args": ["id"], "cwd": "/"}, pid=10, host=HOST,
                        container=state)
    [listener] = [r for r in recs if r.type == Rec.SECCOMP_LISTENER]
    parts = _parts(listener)
    assert len(parts) == 2
    doc = process_state_from_parts(parts, 77)
    assert doc["pid"] == 77 and doc["state"]["pid"] == 10
    assert doc["state"]["status"] == "running" and doc["state"]["id"] == "c1"


def test_no_listener_without_notify(tmp_path):
    (tmp_path / "rootfs").mkdir()
    spec = copy.deepcopy(SPEC)
    spec["linux"]["seccomp"]["syscalls"][0]["action"] = "SCMP_ACT_ERRNO"
    recs = plan_records(spec, tmp_path, host=HOST, container_id="c1")
    assert Rec.SECCOMP_LISTENER not in {r.type for r in recs}


def test_parts_hold_no_nul_whatever_the_strings():
    state = ListenerState("i\u0000d", "/b\u0000", {"\u0000": "\u0000"})
    parts = process_state_parts(state, "m\u0000")
    assert all("\0" not in p for p in parts)
    assert json.loads("1".join(parts))["state"]["id"] == "i\u0000d"
