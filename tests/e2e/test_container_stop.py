"""Stops that cannot get stuck, over real gRPC: a container that ignores
SIGTERM gets StopContainer(timeout=60), then the kubelet shortens the grace
period (StopContainer(timeout=0)), or removes the container, or stops the
pod.  The second call takes the first one over: both return once the
container is killed and its exit (137) recorded, long before 60 s."""
from __future__ import annotations

import threading
import time
from pathlib import Path

import grpc
import pytest

from crio_native._proto import api_pb2
from tests.e2e.test_containers import (busybox_image, cdaemon, container_config,  # noqa: F401
                                       create, cstatus, rpc_code, run_pod)
from tests.fixtures.registry import registry  # noqa: F401

pytestmark = pytest.mark.root

HANG = 15.0     # a call not back by then waits behind the 60 s stop
# TERM is caught and ignored (a handler, so that PID 1 of its namespace gets
# it at all); the log line says the first stop has sent it
IGNORES_TERM = ["sh", "-c", "trap 'echo got-term' TERM; echo up; while :; do sleep 1; done"]


def wait_for_log(path: Path, text: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while text not in (path.read_text() if path.exists() else ""):
        assert time.monotonic() < deadline, f"{text!r} never logged in {path}"
        time.sleep(0.05)


class Call:
    """A blocking RPC on a thread; .error holds what it raised."""

    def __init__(self, fn, *args):
        self.error: Exception | None = None
        self.thread = threading.Thread(target=self._run, args=(fn, *args), daemon=True)
        self.thread.start()

    def _run(self, fn, *args) -> None:
        try:
            fn(*args)
        except Exception as e:  # noqa: BLE001 - handed to the test
            self.error = e

    def returned(self, timeout: float) -> bool:
        self.thread.join(timeout)
        return not self.thread.is_alive()


def stop(d, cid: str, timeout: int) -> None:
    d.runtime.StopContainer(api_pb2.StopContainerRequest(container_id=cid, timeout=timeout),
                            timeout=timeout + 30)


def remove(d, cid: str) -> None:
    d.runtime.RemoveContainer(api_pb2.RemoveContainerRequest(container_id=cid), timeout=60)


def stop_pod(d, pod: str) -> None:
    d.runtime.StopPodSandbox(api_pb2.StopPodSandboxRequest(pod_sandbox_id=pod), timeout=60)


def remove_pod(d, pod: str) -> None:
    d.runtime.RemovePodSandbox(api_pb2.RemovePodSandboxRequest(pod_sandbox_id=pod), timeout=60)


def pending_stop(d, handler: str, name: str) -> tuple[str, str, Call]:
    """A pod with a running container that ignores SIGTERM, and a
    StopContainer(timeout=60) of it in progress (its SIGTERM delivered)."""
    pod = run_pod(d, name=name, handler=handler)
    cid = create(d, pod, container_config(d, command=IGNORES_TERM))
    d.runtime.StartContainer(api_pb2.StartContainerRequest(container_id=cid))
    log = Path(cstatus(d, cid).status.log_path)
    wait_for_log(log, "up")
    first = Call(stop, d, cid, 60)
    wait_for_log(log, "got-term")
    assert cstatus(d, cid).status.state == api_pb2.CONTAINER_RUNNING
    return pod, cid, first


def assert_killed(d, cid: str) -> None:
    st = cstatus(d, cid).status
    assert (st.state, st.exit_code) == (api_pb2.CONTAINER_EXITED, 137), st.message


@pytest.mark.parametrize("second", ["stop", "remove", "stop_pod"])
def test_a_pending_stop_is_taken_over(cdaemon, handler, second):
    d = cdaemon
    pod, cid, first = pending_stop(d, handler, f"{second.replace('_', '')}-{handler}")
    started = time.monotonic()
    if second == "stop":
        stop(d, cid, 0)
    elif second == "remove":
        remove(d, cid)
    else:
        stop_pod(d, pod)
    assert time.monotonic() - started < HANG, f"{second} waited behind the first stop"
    if second == "remove":
        assert rpc_code(lambda: cstatus(d, cid))[0] == grpc.StatusCode.NOT_FOUND
    else:
        assert_killed(d, cid)
    assert first.returned(HANG), "the first StopContainer is still waiting"
    assert first.error is None, first.error
    # what the kubelet does next goes through at once
    remove(d, cid)
    stop_pod(d, pod)
    remove_pod(d, pod)
    assert not d.runtime.ListContainers(api_pb2.ListContainersRequest()).containers
