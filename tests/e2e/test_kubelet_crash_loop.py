"""A crash loop as the kubelet drives it: a container that exits 1 is
created again with attempt 1 (metadata.attempt, the restartCount
annotation, its own log file <name>/1.log), while the first one's status
and log stay until the kubelet's garbage collector removes it."""
from __future__ import annotations

from pathlib import Path

import grpc
import pytest

from crio_native._proto import api_pb2
from tests.e2e.kubelet import CONTAINER_NAME, POD_UID, RESTART_COUNT, Container, Pod, log_lines
from tests.e2e.kubelet import kubelet, node  # noqa: F401
from tests.fixtures.registry import registry  # noqa: F401

pytestmark = pytest.mark.root

CRASHER = "echo starting; echo something broke >&2; exit 1"


def test_a_crashing_container_restarts_with_attempt_1(kubelet):
    k = kubelet
    crasher = Container("crasher", ["sh", "-c", CRASHER])
    pod = Pod("crashy", [crasher])
    pod_id = k.run_pod(pod)
    log_dir = k.log_root / pod.log_dir_name / "crasher"

    first = k.start(pod_id, crasher, attempt=0)
    st0 = k.wait_exited(first.id)
    assert (st0.exit_code, st0.reason) == (1, "Error")
    assert st0.log_path == str(log_dir / "0.log")
    first_log = log_lines(log_dir / "0.log")
    assert sorted(first_log) == [("stderr", "F", "something broke"), ("stdout", "F", "starting")]

    # computePodActions: the dead container is restarted, attempt = restartCount
    second = k.start(pod_id, crasher, attempt=1)
    assert second.id != first.id
    st1 = k.wait_exited(second.id)
    assert (st1.exit_code, st1.reason, st1.metadata.attempt) == (1, "Error", 1)
    assert st1.log_path == str(log_dir / "1.log")
    assert st1.annotations[RESTART_COUNT] == "1"
    assert sorted(log_lines(log_dir / "1.log")) == sorted(first_log)

    # the first one is kept as it was, for `kubectl logs --previous` and the status
    st0_again = k.status(first.id).status
    assert (st0_again.state, st0_again.exit_code, st0_again.metadata.attempt) == (
        api_pb2.CONTAINER_EXITED, 1, 0)
    assert (st0_again.finished_at, st0_again.log_path) == (st0.finished_at, st0.log_path)
    assert log_lines(log_dir / "0.log") == first_log
    selector = {POD_UID: pod.uid, CONTAINER_NAME: "crasher"}
    listed = k.runtime.ListContainers(api_pb2.ListContainersRequest(
        filter=api_pb2.ContainerFilter(label_selector=selector))).containers
    assert sorted((c.metadata.attempt, c.id) for c in listed) == [(0, first.id), (1, second.id)]

    # the garbage collector removes the older one: log first, then the container
    k.remove_container(first.id)
    with pytest.raises(grpc.RpcError) as e:
        k.status(first.id)
    assert e.value.code() == grpc.StatusCode.NOT_FOUND
    assert not (log_dir / "0.log").exists() and (log_dir / "1.log").exists()
    assert k.status(second.id).status.state == api_pb2.CONTAINER_EXITED

    # a third attempt runs while the second is kept
    third = k.start(pod_id, Container("crasher", ["sh", "-c", "echo fine; exit 0"]), attempt=2)
    st2 = k.wait_exited(third.id)
    assert (st2.exit_code, st2.reason) == (0, "Completed")
    assert log_lines(Path(st2.log_path)) == [("stdout", "F", "fine")]
    k.kill_pod(pod_id)
    k.remove_pod(pod_id)
    assert not k.runtime.ListContainers(api_pb2.ListContainersRequest()).containers
