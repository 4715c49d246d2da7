"""The pod infra process, run only when a pod asks for a pod-level PID
namespace (NamespaceMode POD): our static `crio-native-pause`, alone in an
empty read-only root, as PID 1 of a new PID namespace that also joins the
pod's pinned network, IPC and UTS namespaces.  Its PID namespace is pinned
like the others, so the pod's containers join it by path."""
from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path

from crio_native._native import ns
from crio_native.runtime.builtin.container import BuiltinRuntime
from crio_native.sandbox.record import SandboxRecord
from crio_native.spec.namespaces import pod_namespace_joins

PAUSE_BINARY = Path(__file__).resolve().parent.parent / "_bin" / "crio-native-pause"
CAPABILITY_SETS = ("bounding", "effective", "permitted", "inheritable", "ambient")


def infra_spec(record: SandboxRecord) -> dict:
    namespaces = [{"type": "pid"}, {"type": "mount"}, *pod_namespace_joins(record.pins)]
    return {
        "ociVersion": "1.1.0",
        "process": {"args": ["/pause"], "cwd": "/", "env": [], "user": {"uid": 0, "gid": 0},
                    "noNewPrivileges": True,
                    "capabilities": {name: [] for name in CAPABILITY_SETS}},
        "root": {"path": "rootfs", "readonly": True},
        "mounts": [{"destination": "/pause", "type": "bind", "source": str(PAUSE_BINARY),
                    "options": ["rbind", "ro", "nosuid", "nodev"]}],
        "linux": {"namespaces": namespaces},
        "annotations": {"io.kubernetes.cri.container-type": "sandbox",
                        "io.kubernetes.cri.sandbox-id": record.id},
    }


def write_bundle(record: SandboxRecord, spec: dict | None = None) -> Path:
    """The infra bundle in the pod's directory: `spec` (infra_spec's by
    default) and an empty root holding the mount point of /pause."""
    bundle = Path(record.directory) / "infra"
    (bundle / "rootfs").mkdir(parents=True, exist_ok=True)
    (bundle / "rootfs" / "pause").touch()
    (bundle / "config.json").write_text(json.dumps(spec or infra_spec(record)))
    return bundle


def start_infra(runtime: BuiltinRuntime, record: SandboxRecord, pin_root: Path) -> None:
    """Create and start the infra process and pin its PID namespace.  On
    failure nothing of it is left."""
    bundle = write_bundle(record)
    with open(os.devnull, "r+b") as null, contextlib.ExitStack() as undo:
        runtime.create(record.id, bundle, (null.fileno(), null.fileno(), null.fileno()))
        undo.callback(runtime.delete, record.id, True)
        runtime.start(record.id)
        pin_pid_namespace(record, runtime.state(record.id)["pid"], pin_root)
        record.infra = True
        undo.pop_all()


def pin_pid_namespace(record: SandboxRecord, pid: int, pin_root: Path) -> None:
    """Pin the PID namespace of `pid` (the pod's infra process) for the
    pod's containers to join."""
    pin = pin_root / "pid" / record.id
    pin.parent.mkdir(parents=True, exist_ok=True)
    ns.pin(f"/proc/{pid}/ns/pid", pin)
    record.pins["pid"] = str(pin)


def unpin_pid_namespace(record: SandboxRecord) -> None:
    pin = record.pins.pop("pid", None)
    if pin:
        ns.unpin(pin)


def stop_infra(runtime: BuiltinRuntime, record: SandboxRecord) -> None:
    """Kill and delete the infra process and unpin its PID namespace (both
    idempotent, so a retried stop or a rollback may call this again)."""
    if not record.infra:
        return
    if record.id in runtime.list():
        runtime.delete(record.id, force=True)
    unpin_pid_namespace(record)
    record.infra = False
