"""In-place pod resize as the kubelet does it (InPlacePodVerticalScaling):
a Guaranteed pod's container grown and then shrunk in memory and cpu, the
kubelet's pod cgroup (/kubepods/pod<uid>, and for a Burstable pod that
limits everything /kubepods/burstable/pod<uid>) raised before
UpdateContainerResources and lowered after it.  On a v1/hybrid host with
swap accounting the kubelet sends memory+swap = the limit, so a raise must
write memory.memsw.limit_in_bytes before memory.limit_in_bytes (and a cut
after it), and the pod group's memsw must stay the kubelet's (unlimited),
or the kubelet's own write of the pod's memory limit fails with EINVAL."""
from __future__ import annotations

from pathlib import Path

import pytest

from crio_native._proto import api_pb2
from tests.e2e.kubelet import (MIB, Container, Pod, cgroup_value, milli_cpu_to_quota,
                               milli_cpu_to_shares, pure_v2, skip_guaranteed_on_runc,
                               v1_swap_accounting)
from tests.e2e.kubelet import kubelet, node  # noqa: F401
from tests.fixtures.registry import registry  # noqa: F401

pytestmark = [pytest.mark.root, pytest.mark.vm]

APP = "trap 'exit 0' TERM; echo up; while :; do sleep 1 & wait $!; done"
UNLIMITED = 9223372036854771712


def app(qos: str, cpu: int, memory: int) -> Container:
    """Limits `cpu` and `memory`; requests equal (Guaranteed) or half."""
    half = qos == "burstable"
    return Container("app", ["sh", "-c", APP], cpu_request=cpu // 2 if half else cpu,
                     cpu_limit=cpu, memory_request=memory // 2 if half else memory,
                     memory_limit=memory)


def assert_container_limits(k, cid: str, cpu: int, memory: int, shares: int) -> None:
    dirs = k.cgroup_dirs(cid)
    assert int(cgroup_value(dirs, "memory.limit_in_bytes", "memory.max")) == memory
    if any((Path(d) / "memory.memsw.limit_in_bytes").exists() for d in dirs):
        assert int(cgroup_value(dirs, "memory.memsw.limit_in_bytes")) == memory
    quota = cgroup_value(dirs, "cpu.cfs_quota_us", "cpu.max").split()[0]
    assert int(quota) == milli_cpu_to_quota(cpu)
    if any((Path(d) / "cpu.shares").exists() for d in dirs):
        assert int(cgroup_value(dirs, "cpu.shares")) == shares
    # what the kubelet reads back for the pod's status
    res = k.status(cid).status.resources.linux
    assert (res.memory_limit_in_bytes, res.cpu_quota) == (memory, milli_cpu_to_quota(cpu))
    assert res.cpu_shares == shares
    r = k.runtime.ExecSync(api_pb2.ExecSyncRequest(container_id=cid, cmd=["echo", "alive"],
                                                   timeout=10))
    assert (r.exit_code, r.stdout) == (0, b"alive\n")


def assert_pod_limits(k, pod: Pod, cpu: int, memory: int) -> None:
    dirs = k.cgroups.pod_dirs(pod)
    assert int(cgroup_value(dirs, "memory.limit_in_bytes", "memory.max")) == memory
    quota = cgroup_value(dirs, "cpu.cfs_quota_us", "cpu.max").split()[0]
    assert int(quota) == milli_cpu_to_quota(cpu)
    if any((d / "memory.memsw.limit_in_bytes").exists() for d in dirs):
        # the kubelet never sets it, and no runtime may
        assert int(cgroup_value(dirs, "memory.memsw.limit_in_bytes")) == UNLIMITED


@pytest.mark.parametrize("qos", ["guaranteed", "burstable"])
def test_resize_up_and_down_in_place(kubelet, qos):
    k = kubelet
    if qos == "guaranteed":
        skip_guaranteed_on_runc(k.handler)
    pod = Pod(f"resize-{qos}", [app(qos, 200, 64 * MIB)], grace_period=5)
    assert pod.qos == qos
    pod_id = k.run_pod(pod)
    running = k.start(pod_id, pod.containers[0])
    k.wait_log(running.id, "up")
    if v1_swap_accounting() and not pure_v2():
        # the case this test is about: the kubelet's NoSwap memsw = limit
        assert k.status(running.id).status.resources.linux.memory_swap_limit_in_bytes == 64 * MIB
    for cpu, memory in ((200, 64 * MIB), (500, 128 * MIB), (100, 48 * MIB)):
        if cpu != 200:
            k.resize(pod_id, running, app(qos, cpu, memory))
        shares = milli_cpu_to_shares(running.spec.cpu_request or 0)
        assert_container_limits(k, running.id, cpu, memory, shares)
        assert_pod_limits(k, pod, cpu, memory)
    assert k.status(running.id).status.state == api_pb2.CONTAINER_RUNNING

    k.kill_pod(pod_id)
    st = k.status(running.id).status
    assert (st.exit_code, st.reason) == (0, "Completed")
    k.remove_pod(pod_id)
