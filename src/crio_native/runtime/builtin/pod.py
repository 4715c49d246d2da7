"""The pod half of the handlers whose containers are host processes
(`builtin`, and `oci`: runc, crun): the pod cgroup (runtime/pod_half.py),
and the pod infra process, run only when a pod asks for a pod-level PID namespace
(NamespaceMode POD): our static `crio-native-pause`, alone in an empty
read-only root, as PID 1 of a new PID namespace that also joins the pod's
pinned network, IPC and UTS namespaces.  Its PID namespace is pinned like
the others, so the pod's containers join it by path.  The infra runs on the
built-in runtime whatever the pod's handler: it is the same process either
way, and no runc or crun is needed to hold a namespace.  Its spec and
namespace pin are runtime/pod_process.py's."""
from __future__ import annotations

import contextlib
import os
from pathlib import Path

from crio_native import failpoints
from crio_native._native.ns import unpin as unpin_path
from crio_native.config import Config
from crio_native.runtime.builtin.container import BuiltinRuntime
from crio_native.runtime.handler import PodSandbox
from crio_native.runtime.pod_cgroup import PodCgroup
from crio_native.runtime.pod_half import PodHalf
from crio_native.runtime.pod_process import pin_pid_namespace, unpin_pid_namespace, write_bundle

POD = 0   # NamespaceMode POD


class InfraProcess:
    """The infra process of a pod with a pod-level PID namespace (a
    runtime/pod_half.PodProcess): `runtime` holds the infra processes'
    runtime state, `pin_root` the pinned namespaces."""

    def __init__(self, runtime: BuiltinRuntime, pin_root: Path):
        self.runtime = runtime
        self.pin_root = pin_root

    def start(self, pod: PodSandbox) -> bool:
        if pod.pid_mode != POD:
            return False
        start_infra(self.runtime, pod, self.pin_root)
        return True

    def stop(self, pod: PodSandbox) -> None:
        stop_infra(self.runtime, pod, self.pin_root)


def start_infra(runtime: BuiltinRuntime, pod: PodSandbox, pin_root: Path) -> None:
    """Create and start the infra process and pin its PID namespace.  On
    failure nothing of it is left."""
    bundle = write_bundle(pod)
    with open(os.devnull, "r+b") as null, contextlib.ExitStack() as undo:
        undo.callback(stop_infra, runtime, pod, pin_root)
        runtime.create(pod.id, bundle, (null.fileno(), null.fileno(), null.fileno()))
        failpoints.hit("sandbox.run.infra_created")
        runtime.start(pod.id)
        failpoints.hit("sandbox.run.infra_started")
        pin_pid_namespace(pod, runtime.state(pod.id)["pid"], pin_root)
        pod.infra = True
        failpoints.hit("sandbox.run.infra_pinned")
        undo.pop_all()


def stop_infra(runtime: BuiltinRuntime, pod: PodSandbox, pin_root: Path) -> None:
    """Kill and delete the infra process and unpin its PID namespace.  Found
    by the pod's id, not by `pod.infra` alone: a crash between making them
    and the journal saving the pod leaves them unrecorded.  Idempotent, so
    a retried stop, a rollback or a restart's recovery may call it again."""
    if not pod.infra and pod.pid_mode != POD:
        return
    if pod.id in runtime.list():
        runtime.delete(pod.id, force=True)
    unpin_pid_namespace(pod)
    unpin_path(str(pin_root / "pid" / pod.id))   # pinned, not yet saved
    pod.infra = False


def pinned_pod_from_config(config: Config) -> PodHalf:
    """The pod half the `builtin` and `oci` handlers share: infra state in
    <runroot>/infra, pins in <runroot>/ns, pod cgroups by the configured
    driver at or below runtime.cgroup_root."""
    runroot = Path(config.runroot)
    cgroup_root = config.runtime.cgroup_root or None
    return PodHalf(PodCgroup(config.runtime.cgroup_manager, cgroup_root),
                   InfraProcess(BuiltinRuntime(runroot / "infra", cgroup_root=cgroup_root),
                                runroot / "ns"))
