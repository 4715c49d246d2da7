"""The pod's sandbox task on a `vm` (shim v2) runtime handler.

A shim v2 runtime wants to see the pod before its containers: kata boots
the pod's VM when it is asked to create the task whose spec says
`io.kubernetes.cri.container-type: sandbox`, and puts every later task
carrying `io.kubernetes.cri.sandbox-id: <pod>` into that VM; the runc shim
serves them from one shim process.  So for a pod on such a handler,
RunPodSandbox creates and starts the pause process as that sandbox task,
through the pod's handler, once the pod's network is attached (kata reads
the interfaces from the pod's network namespace when the VM boots).  Its
spec is the builtin infra's (our static pause in an empty read-only root,
joining the pod's network, IPC and UTS namespaces, in a PID namespace of its
own) plus /proc and /dev, with the pod's cgroup path, the pod's
annotations and containerd's sandbox annotations.

With a pod-level PID namespace, the task's namespace is pinned like the
others so the pod's containers join it, when the task is a host process
(runc shim); a VM's task has no host namespace to pin, and the pod's
containers then cannot be given one."""
from __future__ import annotations

import logging
import os
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from crio_native.runtime.handler import MonitorOptions, PodSandbox, RuntimeHandler
from crio_native.runtime.pod_process import (infra_spec, pin_pid_namespace, unpin_pid_namespace,
                                             write_bundle)
from crio_native.spec import annotations as ann
from crio_native.spec.resources import cgroups_path

log = logging.getLogger(__name__)

POD = 0   # NamespaceMode POD
MONITOR_DIR = "sandbox-task"   # in the pod's directory: the task's monitor files


class SandboxTask:
    """The sandbox task of a pod on a `vm` handler (a
    runtime/pod_half.PodProcess), run through the handler's own shim."""

    def __init__(self, handler: RuntimeHandler, cgroup_manager: str, pin_root: Path):
        self.handler = handler
        self.cgroup_manager = cgroup_manager
        self.pin_root = pin_root

    def start(self, pod: PodSandbox) -> bool:
        start_sandbox_task(self.handler, pod, self.cgroup_manager, self.pin_root)
        return True

    def stop(self, pod: PodSandbox) -> None:
        stop_sandbox_task(self.handler, pod)


def sandbox_task_spec(pod: PodSandbox, cgroup_manager: str) -> dict[str, Any]:
    spec = infra_spec(pod)
    # runc and kata's agent want /proc (runc closes the fds it leaves open
    # by reading /proc/self/fd) and make the default device nodes in /dev
    spec["mounts"] += [
        {"destination": "/proc", "type": "proc", "source": "proc",
         "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
         "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
    ]
    spec["linux"]["cgroupsPath"] = cgroups_path(cgroup_manager,
                                                pod.cgroup_parent, pod.id)
    # The pod's own annotations, as CRI-O gives them to its infra spec:
    # kata reads io.katacontainers.* ones (those its configuration's
    # enable_annotations allows) when it boots the pod's VM.  Ours on top.
    spec["annotations"] = {
        **{k: v for k, v in pod.annotations.items() if not k.startswith(ann.PREFIX)},
        **spec["annotations"],
        ann.SANDBOX_NAME: pod.name,
        ann.SANDBOX_NAMESPACE: pod.namespace,
        ann.SANDBOX_UID: pod.uid,
    }
    return spec


def start_sandbox_task(handler: RuntimeHandler, pod: PodSandbox, cgroup_manager: str,
                       pin_root: Path) -> None:
    """Create and start the pod's sandbox task (and pin its PID namespace
    for a pod-level one).  On failure nothing of it is left."""
    bundle = write_bundle(pod, sandbox_task_spec(pod, cgroup_manager))
    state_dir = Path(pod.directory) / MONITOR_DIR
    state_dir.mkdir(exist_ok=True)
    with ExitStack() as undo:
        created = handler.create(pod.id, bundle, MonitorOptions(state_dir, None))
        undo.callback(handler.delete, pod.id, True)
        handler.start(pod.id)
        if pod.pid_mode == POD:
            _pin_pid_namespace(pod, created.pid, pin_root)
        pod.sandbox_task = True
        undo.pop_all()


def _pin_pid_namespace(pod: PodSandbox, pid: int, pin_root: Path) -> None:
    try:
        theirs = os.readlink(f"/proc/{pid}/ns/pid")
    except OSError:
        theirs = None
    if theirs is None or theirs == os.readlink("/proc/self/ns/pid"):
        log.warning("pod %s: the sandbox task (pid %d) of handler %s has no PID namespace of "
                    "its own on this host; the pod's containers get none to share",
                    pod.id, pid, pod.runtime_handler)
        return
    pin_pid_namespace(pod, pid, pin_root)


def stop_sandbox_task(handler: RuntimeHandler, pod: PodSandbox) -> None:
    """Kill and delete the sandbox task, unpin its PID namespace (both
    idempotent: a retried stop or a rollback may call this again).  The
    shim itself ends with the pod's last task."""
    if not pod.sandbox_task:
        return
    handler.delete(pod.id, force=True)
    unpin_pid_namespace(pod)
    pod.sandbox_task = False
