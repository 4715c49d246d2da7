"""A pod on a `vm` (shim v2) runtime handler over real gRPC.

Kata cannot be installed here, so the handler drives Debian's
containerd-shim-runc-v2, which serves the same task API and groups a pod's
tasks into one shim by the CRI sandbox-id annotation, as kata groups them
into one VM.  Checked: RunPodSandbox starts the pod's sandbox task (our
pause) through the handler, the pod's containers join that shim and the
task's PID namespace, their stats come through the shim, removing one container leaves the shim serving the
others, a daemon killed and restarted finds them again, and removing the
pod ends the shim and leaves nothing behind."""
from __future__ import annotations

import os
import signal
from pathlib import Path

import grpc
import pytest

from crio_native._proto import api_pb2
from tests.e2e.test_containers import (busybox_image, container_config, create,  # noqa: F401
                                       cstatus, log_entries, serving_image, wait_exited)
from tests.fixtures.registry import registry  # noqa: F401
from tests.integration.test_oci_cli_handler import processes_mentioning

pytestmark = pytest.mark.root

SHIM = "/usr/bin/containerd-shim-runc-v2"
HANDLER = "shimvm"


@pytest.fixture
def vmdaemon(daemon_factory, busybox_image, tmp_path):  # noqa: F811
    if not os.access(SHIM, os.X_OK):
        pytest.skip(f"{SHIM} is not installed (Debian's containerd package)")
    d = daemon_factory()
    d.prepare()
    (d.base / "crio-native.conf.d" / "50-vm.conf").write_text(
        f'[runtime.runtimes.{HANDLER}]\nruntime_type = "vm"\nruntime_path = "{SHIM}"\n'
        # a "shim" that fails to start
        '[runtime.runtimes.brokenvm]\nruntime_type = "vm"\nruntime_path = "/bin/false"\n')
    yield from serving_image(d.start(), busybox_image, tmp_path)


def shims_of(d) -> list[int]:
    """The shim processes serving this daemon (started with its socket as
    their -address)."""
    return processes_mentioning(f"-address {d.socket} ")


def run_vm_pod(d, name: str, handler: str = HANDLER) -> str:
    config = api_pb2.PodSandboxConfig(
        metadata=api_pb2.PodSandboxMetadata(name=name, namespace="default", uid=f"uid-{name}"),
        hostname=name, log_directory=str(d.pod_logs / name))
    opts = config.linux.security_context.namespace_options
    opts.network, opts.pid = api_pb2.NODE, api_pb2.POD
    d.vm_pod_config = config
    return d.runtime.RunPodSandbox(api_pb2.RunPodSandboxRequest(
        config=config, runtime_handler=handler), timeout=60).pod_sandbox_id


def exec_out(d, cid: str, *cmd: str) -> bytes:
    r = d.runtime.ExecSync(api_pb2.ExecSyncRequest(container_id=cid, cmd=list(cmd), timeout=10))
    assert r.exit_code == 0, r.stderr
    return r.stdout


def test_a_pod_is_one_shim_with_its_sandbox_task(vmdaemon):
    d = vmdaemon
    runtime_root = d.base / "run" / "runtimes" / HANDLER
    pod = run_vm_pod(d, "vmpod")
    [shim] = shims_of(d)
    assert sorted(os.listdir(runtime_root)) == [pod]      # the sandbox task

    def start(name: str, command: list[str]) -> str:
        config = container_config(d, name=name, command=command)
        config.linux.security_context.namespace_options.pid = api_pb2.POD
        cid = create(d, pod, config, d.vm_pod_config)
        d.runtime.StartContainer(api_pb2.StartContainerRequest(container_id=cid))
        return cid
    first = start("first", ["sh", "-c", "echo first; exec sleep 1000"])
    second = start("second", ["sh", "-c", "echo second; exec sleep 1000"])
    assert shims_of(d) == [shim]
    assert sorted(os.listdir(runtime_root)) == sorted([pod, first, second])
    # both joined the sandbox task's PID namespace: our pause is its PID 1
    for cid in (first, second):
        assert exec_out(d, cid, "cat", "/proc/1/cmdline") == b"/pause\0"
    # and see each other: pause, two sleeps and the shell that lists them
    # (echo is built in: no other process)
    assert len(exec_out(d, first, "sh", "-c", "echo /proc/[0-9]*").split()) == 4
    # stats come from the shim's Task/Stats (kata's cgroups are in its VM)
    stats = d.runtime.ContainerStats(api_pb2.ContainerStatsRequest(container_id=first)).stats
    assert stats.attributes.id == first
    assert stats.cpu.usage_core_nano_seconds.value > 0
    assert stats.memory.working_set_bytes.value > 0 and stats.memory.rss_bytes.value > 0

    d.runtime.RemoveContainer(api_pb2.RemoveContainerRequest(container_id=first))
    assert shims_of(d) == [shim]
    assert cstatus(d, second).status.state == api_pb2.CONTAINER_RUNNING
    assert exec_out(d, second, "echo", "still") == b"still\n"

    # a daemon killed and restarted finds the shim again
    d.stop(signal.SIGKILL)
    d.start()
    assert cstatus(d, second).status.state == api_pb2.CONTAINER_RUNNING
    assert exec_out(d, second, "echo", "again") == b"again\n"

    d.runtime.StopPodSandbox(api_pb2.StopPodSandboxRequest(pod_sandbox_id=pod))
    st = wait_exited(d, second)
    assert st.state == api_pb2.CONTAINER_EXITED
    assert log_entries(Path(st.log_path)) == [("stdout", "F", "second")]
    d.runtime.RemovePodSandbox(api_pb2.RemovePodSandboxRequest(pod_sandbox_id=pod))
    assert shims_of(d) == []
    assert os.listdir(runtime_root) == []
    assert not (d.base / "run" / "ns" / "pid" / pod).exists()


def test_a_sandbox_task_that_fails_leaves_no_pod(vmdaemon):
    d = vmdaemon
    with pytest.raises(grpc.RpcError) as failed:
        run_vm_pod(d, "broken", handler="brokenvm")
    assert failed.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "/bin/false start" in failed.value.details()
    assert not d.runtime.ListPodSandbox(api_pb2.ListPodSandboxRequest()).items
    assert os.listdir(d.base / "run" / "runtimes" / "brokenvm") == []
    assert os.listdir(d.base / "run" / "pods") == []
    assert [p for p in (d.base / "run" / "ns").rglob("*") if not p.is_dir()] == []  # no pins
