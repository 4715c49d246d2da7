"""The systemd cgroup driver on a node whose PID 1 is systemd, driven as the
kubelet's systemd driver drives it: the pod slice made first (by name, as
the kubelet makes it over D-Bus) and sent as its full cgroup path, each
container in crio-<id>.scope under it with its limits as unit properties,
each monitor in crio-conmon-<id>.scope beside it; the built-in runtime and
runc (the oracle) give the same placement.  Runs in `vmrun.sh --init
systemd` (make test's third VM run)."""
from __future__ import annotations

import signal
import subprocess
import time
import uuid
from pathlib import Path

import grpc
import pytest

from crio_native._proto import api_pb2
from crio_native.linux.systemd.bus import SystemdManager
from tests.e2e.test_containers import (busybox_image, container_config, create,  # noqa: F401
                                       cstatus, serving_image, verbose_info, wait_exited)
from tests.fixtures.registry import registry  # noqa: F401

pytestmark = [pytest.mark.root, pytest.mark.vm_systemd, pytest.mark.requires_systemd]

CGROUP2 = Path("/sys/fs/cgroup")
MEMORY = 64 << 20


def unit_property(unit: str, name: str) -> str:
    return subprocess.run(["systemctl", "show", "-P", name, unit], capture_output=True,
                          text=True, check=True).stdout.strip()


def cgroup_of(pid: int) -> str:
    return Path(f"/proc/{pid}/cgroup").read_text().strip().removeprefix("0::")


@pytest.fixture
def pod_slice():
    """The pod's slice, made before RunPodSandbox as the kubelet makes it:
    (its name, the cgroup parent the kubelet sends)."""
    uid = str(uuid.uuid4())
    name = f"kubepods-besteffort-pod{uid.replace('-', '_')}.slice"
    manager = SystemdManager()
    manager.start_transient_unit(name, [("Description", ("s", "e2e pod slice"))])
    parent = f"/kubepods.slice/kubepods-besteffort.slice/{name}"
    yield uid, name, parent
    manager.stop_unit(name)
    for level in ("kubepods-besteffort.slice", "kubepods.slice"):
        manager.stop_unit(level)


@pytest.fixture
def sdaemon(daemon_factory, busybox_image, tmp_path):  # noqa: F811
    yield from serving_image(daemon_factory("--cgroup-manager", "systemd").start(),
                             busybox_image, tmp_path)


def run_pod(d, uid: str, parent: str, handler: str) -> str:
    config = api_pb2.PodSandboxConfig(
        metadata=api_pb2.PodSandboxMetadata(name="sd", namespace="default", uid=uid),
        hostname="sd", log_directory=str(d.pod_logs / "sd"))
    config.linux.cgroup_parent = parent
    opts = config.linux.security_context.namespace_options
    opts.network, opts.pid = api_pb2.NODE, api_pb2.CONTAINER
    return d.runtime.RunPodSandbox(api_pb2.RunPodSandboxRequest(
        config=config, runtime_handler=handler), timeout=60).pod_sandbox_id


def test_containers_and_monitors_get_scopes_in_the_pod_slice(sdaemon, pod_slice, handler):
    d, (uid, slice_name, parent) = sdaemon, pod_slice
    pod = run_pod(d, uid, parent, handler)
    config = container_config(d, command=["sleep", "1000"])
    config.linux.resources.memory_limit_in_bytes = MEMORY
    cid = create(d, pod, config)
    d.runtime.StartContainer(api_pb2.StartContainerRequest(container_id=cid))
    info = verbose_info(d, cid)
    scope, monitor_scope = f"crio-{cid}.scope", f"crio-conmon-{cid}.scope"
    assert cgroup_of(info["pid"]) == f"{parent}/{scope}"
    assert unit_property(scope, "Slice") == slice_name
    assert unit_property(scope, "MemoryMax") == str(MEMORY)
    assert (CGROUP2 / parent.lstrip("/") / scope / "memory.max").read_text().strip() == \
        str(MEMORY)
    if handler == "builtin":
        # ours leaves the daemon's unit (moved just after the create)
        deadline = time.monotonic() + 10
        while cgroup_of(info["monitorPid"]) != f"{parent}/{monitor_scope}" and \
                time.monotonic() < deadline:
            time.sleep(0.05)
        assert cgroup_of(info["monitorPid"]) == f"{parent}/{monitor_scope}"
        assert unit_property(scope, "Delegate") == "yes"

    probe = d.runtime.ExecSync(api_pb2.ExecSyncRequest(
        container_id=cid, cmd=["cat", "/proc/self/cgroup"], timeout=10))
    assert probe.exit_code == 0
    # an exec joins the container's group (its own view is the group's root)
    assert probe.stdout.decode().strip() in ("0::/", f"0::{parent}/{scope}")

    raised = api_pb2.LinuxContainerResources(memory_limit_in_bytes=2 * MEMORY)
    d.runtime.UpdateContainerResources(api_pb2.UpdateContainerResourcesRequest(
        container_id=cid, linux=raised))
    assert unit_property(scope, "MemoryMax") == str(2 * MEMORY)

    d.runtime.StopContainer(api_pb2.StopContainerRequest(container_id=cid, timeout=0))
    assert wait_exited(d, cid).exit_code == 137
    d.runtime.RemoveContainer(api_pb2.RemoveContainerRequest(container_id=cid))
    d.runtime.RemovePodSandbox(api_pb2.RemovePodSandboxRequest(pod_sandbox_id=pod))
    for unit in (scope, monitor_scope):
        assert unit_property(unit, "LoadState") == "not-found", unit
    assert not (CGROUP2 / parent.lstrip("/") / scope).exists()


def test_the_container_outlives_the_daemon(sdaemon, pod_slice):
    d, (uid, _name, parent) = sdaemon, pod_slice
    pod = run_pod(d, uid, parent, "")
    cid = create(d, pod, container_config(d, command=["sleep", "1000"]))
    d.runtime.StartContainer(api_pb2.StartContainerRequest(container_id=cid))
    pid = verbose_info(d, cid)["pid"]
    d.stop(signal.SIGKILL)
    d.start()
    assert cstatus(d, cid).status.state == api_pb2.CONTAINER_RUNNING
    assert cgroup_of(pid) == f"{parent}/crio-{cid}.scope"
    d.runtime.RemovePodSandbox(api_pb2.RemovePodSandboxRequest(pod_sandbox_id=pod))
    assert unit_property(f"crio-{cid}.scope", "LoadState") == "not-found"


def test_a_parent_systemd_cannot_nest_is_refused(sdaemon, pod_slice):
    d, (uid, name, _parent) = sdaemon, pod_slice
    with pytest.raises(grpc.RpcError) as e:
        run_pod(d, uid, f"/kubepods.slice/{name}", "")
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "cgroup_parent" in e.value.details()
    assert "is not where systemd puts" in e.value.details()
    assert not d.runtime.ListPodSandbox(api_pb2.ListPodSandboxRequest()).items
