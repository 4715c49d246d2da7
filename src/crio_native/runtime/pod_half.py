"""The pod half every handler has (RuntimeHandler.start_sandbox and its
kin): the pod cgroup (runtime/pod_cgroup.py), then the one process that
holds the pod, which differs per runtime: the builtin infra for a pod-level
PID namespace (runtime/builtin/pod.py), or a shim's sandbox task
(runtime/shim/pod.py).  The order, the undo and the journal calls live
here once."""
from __future__ import annotations

from contextlib import ExitStack
from typing import Any, Callable, Protocol

from crio_native import failpoints
from crio_native.errors import FailedPrecondition
from crio_native.runtime.handler import PodSandbox
from crio_native.runtime.pod_cgroup import PodCgroup


class PodProcess(Protocol):
    """The process that holds a pod, as its runtime runs it."""

    def start(self, pod: PodSandbox) -> bool:
        """Start it if this pod needs one (recording it on `pod`); whether
        it did.  A failure leaves nothing of it."""

    def stop(self, pod: PodSandbox) -> None:
        """Stop it; idempotent (a retried stop or a rollback calls it again)."""


class PodHalf:
    """The pod cgroup, then the pod's process."""

    def __init__(self, cgroup: PodCgroup, process: PodProcess):
        self.cgroup = cgroup
        self.process = process

    def start(self, pod: PodSandbox, resources: dict[str, Any],
              journal: Callable[[], None]) -> None:
        with ExitStack() as undo:
            undo.callback(self.cgroup.remove, pod)   # removes what the journal names
            self.cgroup.create(pod, resources, journal)
            failpoints.hit("sandbox.run.cgroup_made")
            if self.process.start(pod):
                undo.callback(self.process.stop, pod)
                journal()
            undo.pop_all()

    def stop(self, pod: PodSandbox) -> None:
        self.process.stop(pod)

    def remove(self, pod: PodSandbox) -> None:
        self.process.stop(pod)
        self.cgroup.remove(pod)


class DelegatedPodHalf:
    """RuntimeHandler's pod half for a handler that keeps a PodHalf in
    `pod` (None: a handler made for containers alone, as tests and the
    runtime CLI make them)."""

    name: str
    pod: PodHalf | None

    def start_sandbox(self, pod: PodSandbox, resources: dict[str, Any],
                      journal: Callable[[], None]) -> None:
        self._pod_half().start(pod, resources, journal)

    def stop_sandbox(self, pod: PodSandbox) -> None:
        self._pod_half().stop(pod)

    def remove_sandbox(self, pod: PodSandbox) -> None:
        self._pod_half().remove(pod)

    def _pod_half(self) -> PodHalf:
        if self.pod is None:
            raise FailedPrecondition(f"runtime handler {self.name}: made without a pod half")
        return self.pod
