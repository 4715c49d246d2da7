"""StopContainer and StopPodSandbox release what only a live container
needs, once its exit is recorded (container/manager.py _release; CRI-O
unmounts a container's storage in StopContainer, containerd deletes the
task when it exits): the rootfs mount, the runtime's state and the
container's cgroups.  The CRI still answers everything about the exited
container afterwards (status, list, logs, stats with its writable layer,
across a daemon restart), and RemoveContainer removes the rest."""
from __future__ import annotations

import json
from pathlib import Path

import grpc
import pytest

from crio_native._proto import api_pb2
from tests.e2e import crash_harness as h
from tests.e2e.test_containers import (busybox_image, cdaemon, container_config,  # noqa: F401
                                       create, cstatus, log_entries, rootfs_mounts, rpc_code,
                                       run_pod)
from tests.fixtures.registry import registry  # noqa: F401

pytestmark = pytest.mark.root

@pytest.fixture(scope="module", autouse=True)
def bridge():
    yield
    h.delete_bridge()      # the crash daemon's pod network


WRITES = ["sh", "-c", "echo some-data > /data; echo up; exec sleep 1000"]


def runtime_state(d, handler: str, cid: str) -> Path:
    return d.base / "run" / "runtimes" / handler / cid


def started(d, handler: str, name: str = "pod") -> tuple[str, str, list[str]]:
    pod = run_pod(d, name=name, handler=handler)
    cid = create(d, pod, container_config(d, command=WRITES))
    d.runtime.StartContainer(api_pb2.StartContainerRequest(container_id=cid))
    info = json.loads(cstatus(d, cid, verbose=True).info["info"])
    assert rootfs_mounts(d) and runtime_state(d, handler, cid).exists()
    assert info["cgroupDirs"] and all(Path(c).is_dir() for c in info["cgroupDirs"])
    return pod, cid, info["cgroupDirs"]


def assert_released_and_answered(d, handler: str, cid: str, cgroups: list[str]) -> None:
    assert rootfs_mounts(d) == []
    assert not runtime_state(d, handler, cid).exists()
    assert [c for c in cgroups if Path(c).exists()] == []
    st = cstatus(d, cid).status
    assert (st.state, st.exit_code, st.reason) == (api_pb2.CONTAINER_EXITED, 137, "Error")
    assert ("stdout", "F", "up") in log_entries(Path(st.log_path))
    assert [c.id for c in d.runtime.ListContainers(api_pb2.ListContainersRequest()).containers
            ] == [cid]
    stats = d.runtime.ContainerStats(api_pb2.ContainerStatsRequest(container_id=cid)).stats
    assert stats.writable_layer.used_bytes.value > 0      # the upper dir is kept
    assert not stats.HasField("cpu")


def test_stop_container_releases_the_mount_runtime_state_and_cgroups(cdaemon, handler):
    d = cdaemon
    _pod, cid, cgroups = started(d, handler)
    d.runtime.StopContainer(api_pb2.StopContainerRequest(container_id=cid, timeout=0))
    assert_released_and_answered(d, handler, cid, cgroups)
    d.runtime.StopContainer(api_pb2.StopContainerRequest(container_id=cid, timeout=0))

    d.stop()
    d.start()       # the record says released: nothing is mounted or made again
    assert_released_and_answered(d, handler, cid, cgroups)
    rootfs = d.base / "root"
    assert any(rootfs.rglob(cid))
    d.runtime.RemoveContainer(api_pb2.RemoveContainerRequest(container_id=cid))
    assert rpc_code(lambda: cstatus(d, cid))[0] == grpc.StatusCode.NOT_FOUND
    assert not any(rootfs.rglob(cid)) and not (d.base / "run" / "containers" / cid).exists()


def test_stop_pod_sandbox_releases_its_containers(cdaemon, handler):
    d = cdaemon
    pod, cid, cgroups = started(d, handler)
    d.runtime.StopPodSandbox(api_pb2.StopPodSandboxRequest(pod_sandbox_id=pod))
    assert_released_and_answered(d, handler, cid, cgroups)
    d.runtime.RemovePodSandbox(api_pb2.RemovePodSandboxRequest(pod_sandbox_id=pod))
    assert not d.runtime.ListContainers(api_pb2.ListContainersRequest()).containers
    assert not any((d.base / "root").rglob(cid))


@pytest.mark.parametrize("failpoint", ["container.stop.runtime_deleted",
                                       "container.stop.rootfs_unmounted"])
def test_a_release_cut_by_kill_9_is_finished_at_start_up(failpoint, tmp_path,
                                                         busybox_image):  # noqa: F811
    """kill -9 between the recorded exit and `released`: the restarted
    daemon unmounts the rootfs and deletes the runtime state before any
    RPC asks (no StopContainer retry needed), and mounts nothing again."""
    d = h.crash_daemon(tmp_path / "d")
    d.image_name = busybox_image[0]
    try:
        h.start(d, failpoint)
        h.pull(d, d.image_name)
        before, cut = h.prepare("container.stop", d)
        cid = before.container_id
        rootfs = d.base / "root" / "storage" / "containers" / cid / "merged"
        assert str(rootfs) in h._mounts_under(d.base)
        h.expect_cut(cut)
        assert h.sigkilled(h.wait_killed(d))
        h.start(d)
        assert [m for m in h._mounts_under(d.base) if cid in m] == []
        assert not runtime_state(d, "builtin", cid).exists()
        st = h.container_status(d, cid)
        assert (st.state, st.exit_code) == (api_pb2.CONTAINER_EXITED, 137)
        h.remove_pod(d, before.pod_id)
        assert not (d.base / "root" / "storage" / "containers" / cid).exists()
    finally:
        if d.proc is not None and d.proc.poll() is None:
            for pod in h.pods(d):
                h.remove_pod(d, pod.id)
        d.stop()
