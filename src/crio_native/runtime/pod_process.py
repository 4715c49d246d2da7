"""The process that holds a pod, whichever runtime runs it: our static
`crio-native-pause` alone in an empty read-only root, as PID 1 of a PID
namespace of its own, joining the pod's pinned network, IPC and UTS
namespaces (the builtin infra, runtime/builtin/pod.py; a shim's sandbox
task, runtime/shim/pod.py, adds what its runtime wants).  Where the pod asks
for a pod-level PID namespace, that namespace is pinned like the others so
the pod's containers join it by path."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from crio_native._native import ns
from crio_native.monitor.paths import pause_binary
from crio_native.runtime.handler import PodSandbox
from crio_native.spec.namespaces import pod_namespace_joins

CAPABILITY_SETS = ("bounding", "effective", "permitted", "inheritable", "ambient")


def infra_spec(pod: PodSandbox) -> dict[str, Any]:
    namespaces = [{"type": "pid"}, {"type": "mount"}, *pod_namespace_joins(pod.pins)]
    return {
        "ociVersion": "1.1.0",
        "process": {"args": ["/pause"], "cwd": "/", "env": [], "user": {"uid": 0, "gid": 0},
                    "noNewPrivileges": True,
                    "capabilities": {name: [] for name in CAPABILITY_SETS}},
        "root": {"path": "rootfs", "readonly": True},
        "mounts": [{"destination": "/pause", "type": "bind", "source": str(pause_binary()),
                    "options": ["rbind", "ro", "nosuid", "nodev"]}],
        "linux": {"namespaces": namespaces},
        "annotations": {"io.kubernetes.cri.container-type": "sandbox",
                        "io.kubernetes.cri.sandbox-id": pod.id},
    }


def write_bundle(pod: PodSandbox, spec: dict[str, Any] | None = None) -> Path:
    """The infra bundle in the pod's directory: `spec` (infra_spec's by
    default) and an empty root holding the mount point of /pause."""
    bundle = Path(pod.directory) / "infra"
    (bundle / "rootfs").mkdir(parents=True, exist_ok=True)
    (bundle / "rootfs" / "pause").touch()
    (bundle / "config.json").write_text(json.dumps(spec or infra_spec(pod)))
    return bundle


def pin_pid_namespace(pod: PodSandbox, pid: int, pin_root: Path) -> None:
    """Pin the PID namespace of `pid` (the pod's infra process) for the
    pod's containers to join."""
    pin = pin_root / "pid" / pod.id
    pin.parent.mkdir(parents=True, exist_ok=True)
    ns.pin(f"/proc/{pid}/ns/pid", pin)
    pod.pins["pid"] = str(pin)


def unpin_pid_namespace(pod: PodSandbox) -> None:
    pin = pod.pins.pop("pid", None)
    if pin:
        ns.unpin(pin)
