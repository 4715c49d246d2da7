"""An OOM kill as the kubelet sees it: a Burstable pod's container that
outgrows its memory limit ends EXITED with reason OOMKilled and exit code
137, its sidecar runs on, and the kubelet's pod cgroup keeps its limits.
On cgroup v2 the kubelet also asks for memory.oom.group=1 (the whole
container's group is killed), which the runtimes must accept."""
from __future__ import annotations

import pytest

from crio_native._proto import api_pb2
from tests.e2e.kubelet import MIB, Container, Pod
from tests.e2e.kubelet import kubelet, node  # noqa: F401
from tests.fixtures.registry import registry  # noqa: F401

pytestmark = [pytest.mark.root, pytest.mark.vm]

# doubles a string until the limit stops it
HOG = 'echo start; x=a; while :; do x="$x$x"; done'
SIDECAR = "trap 'exit 0' TERM; echo up; while :; do sleep 1 & wait $!; done"


def test_a_container_over_its_limit_is_oomkilled(kubelet):
    k = kubelet
    hog = Container("hog", ["sh", "-c", HOG], cpu_request=100, memory_request=16 * MIB,
                    memory_limit=32 * MIB)
    sidecar = Container("sidecar", ["sh", "-c", SIDECAR], memory_request=8 * MIB,
                        memory_limit=16 * MIB)
    pod = Pod("oom", [hog, sidecar], grace_period=5)
    assert pod.qos == "burstable"
    pod_id = k.run_pod(pod)
    side = k.start(pod_id, sidecar)
    k.wait_log(side.id, "up")
    victim = k.start(pod_id, hog)
    st = k.wait_exited(victim.id, timeout=60)
    assert (st.state, st.reason, st.exit_code) == (api_pb2.CONTAINER_EXITED, "OOMKilled", 137)
    assert st.finished_at >= st.started_at > 0
    assert k.status(side.id).status.state == api_pb2.CONTAINER_RUNNING
    assert k.cgroups.limits(pod) == k.cgroups.written[pod.uid]
    # listed as the kubelet's PLEG relists it
    listed = {c.id: c.state for c in k.runtime.ListContainers(
        api_pb2.ListContainersRequest(filter=api_pb2.ContainerFilter(
            pod_sandbox_id=pod_id))).containers}
    assert listed == {side.id: api_pb2.CONTAINER_RUNNING, victim.id: api_pb2.CONTAINER_EXITED}
    k.kill_pod(pod_id)
    k.remove_pod(pod_id)
