"""Request fields no RPC can act on, over real gRPC (issue 17): each is
INVALID_ARGUMENT naming the RPC and the field, refused before anything is
made (no record, hidden or not, before or after a restart); the largest
values a client may send work.  The fuzz test (test_request_fuzz.py) looks
for more of the kind at random."""
from __future__ import annotations

import grpc
import pytest

from crio_native._proto import api_pb2
from tests.e2e import cni
from tests.e2e.test_containers import (busybox_image, cdaemon, container_config,  # noqa: F401
                                       create, cstatus, remove_all_pods, run_pod, wait_exited)
from tests.fixtures.registry import registry  # noqa: F401

pytestmark = pytest.mark.root


@pytest.fixture
def net_daemon(daemon_factory, tmp_path):
    """A daemon whose CNI dir holds the bridge network: a pod's name and
    namespace reach the plugins as CNI_ARGS."""
    d = daemon_factory("--cni-plugin-dir", cni.PLUGIN_DIR)
    cni.write_network(d.network_dir, tmp_path / "ipam")
    d.start()
    yield d
    if d.proc is not None and d.proc.poll() is None:
        remove_all_pods(d)     # a pod a test expected to be refused
    d.stop()
    cni.delete_bridge()


def refusal(call) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as info:
        call()
    return info.value.code(), info.value.details()


def records(d, kind: str) -> list[str]:
    directory = d.base / "root" / kind
    return sorted(p.name for p in directory.iterdir()) if directory.is_dir() else []


def pod_config(**kw) -> api_pb2.PodSandboxConfig:
    config = api_pb2.PodSandboxConfig(
        metadata=api_pb2.PodSandboxMetadata(name="web", namespace="default", uid="uid-1"),
        hostname="web", log_directory="/var/log/pods/x")
    config.linux.security_context.namespace_options.pid = api_pb2.CONTAINER
    for path, value in kw.items():
        *parents, name = path.split("__")
        target = config
        for parent in parents:
            target = getattr(target, parent)
        setattr(target, name, value)
    return config


def assert_no_pod(d) -> None:
    assert d.runtime.ListPodSandbox(api_pb2.ListPodSandboxRequest()).items == []
    assert records(d, "sandboxes") == []
    assert not any((d.base / "run" / "ns").glob("*/*"))


# ---- RunPodSandbox ----------------------------------------------------------------

@pytest.mark.parametrize("field", ["name", "namespace", "uid"])
def test_nul_in_pod_metadata_is_refused_and_leaves_no_record(net_daemon, field):
    d = net_daemon
    config = pod_config(**{f"metadata__{field}": "we\0b"})
    code, details = refusal(lambda: d.runtime.RunPodSandbox(
        api_pb2.RunPodSandboxRequest(config=config), timeout=60))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert details == f"RunPodSandbox: config.metadata.{field}: contains a NUL byte"
    assert_no_pod(d)
    d.stop()
    d.start()        # nothing hidden that a restart would find either
    assert_no_pod(d)


@pytest.mark.parametrize("field, value, message", [
    ("linux__security_context__namespace_options__pid", 99,
     "config.linux.security_context.namespace_options.pid: 99 is not a NamespaceMode value"),
    ("linux__security_context__namespace_options__network", 1048576,
     "config.linux.security_context.namespace_options.network: 1048576 is not a NamespaceMode"),
    ("linux__security_context__seccomp__profile_type", 99,
     "config.linux.security_context.seccomp.profile_type: 99 is not a ProfileType value"),
    ("linux__cgroup_parent", "/kubepods\0", "config.linux.cgroup_parent: contains a NUL byte"),
    # found by the fuzz test: cgroupfs refused the directory with EINVAL (INTERNAL)
    ("linux__cgroup_parent", "\n", "config.linux.cgroup_parent: contains the control character"),
    ("log_directory", "relative/logs", "config.log_directory: must be an absolute path"),
    ("hostname", "web\n", "config.hostname: contains the control character"),
    ("metadata__name", "web;K8S_POD_NAMESPACE=kube-system", "config.metadata.name: contains ';'"),
])
def test_bad_pod_field_is_refused_naming_it(net_daemon, field, value, message):
    d = net_daemon
    config = pod_config(**{field: value})
    code, details = refusal(lambda: d.runtime.RunPodSandbox(
        api_pb2.RunPodSandboxRequest(config=config), timeout=60))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert details.startswith(f"RunPodSandbox: {message}")
    assert_no_pod(d)


def test_port_mapping_protocol_outside_the_enum_is_refused(net_daemon):
    d = net_daemon
    config = pod_config()
    config.port_mappings.append(api_pb2.PortMapping(protocol=99, container_port=80,
                                                    host_port=8080))
    code, details = refusal(lambda: d.runtime.RunPodSandbox(
        api_pb2.RunPodSandboxRequest(config=config), timeout=60))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert details.startswith("RunPodSandbox: config.port_mappings[0].protocol: 99 is not a "
                              "Protocol value")
    assert_no_pod(d)


# ---- CreateContainer ----------------------------------------------------------------

def _bad_containers():
    out = []
    for signal in (99, 1048576):
        out.append(({"stop_signal": signal},
                    f"config.stop_signal: {signal} is not a Signal value (want 0..65)"))
    out.append(({"metadata": api_pb2.ContainerMetadata(name="c\0")},
                "config.metadata.name: contains a NUL byte"))
    out.append(({"log_path": "../escape.log"}, "config.log_path: must be relative"))
    return out


@pytest.mark.parametrize("fields, message", _bad_containers(),
                         ids=[m.split(":")[0] + str(i) for i, (_, m) in
                              enumerate(_bad_containers())])
def test_bad_container_field_is_refused_naming_it(cdaemon, fields, message):  # noqa: F811
    d = cdaemon
    pod = run_pod(d)
    config = container_config(d)
    for key, value in fields.items():
        if isinstance(value, api_pb2.ContainerMetadata):
            config.metadata.CopyFrom(value)
        else:
            setattr(config, key, value)
    code, details = refusal(lambda: create(d, pod, config))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert details.startswith(f"CreateContainer: {message}")
    assert d.runtime.ListContainers(api_pb2.ListContainersRequest()).containers == []
    assert records(d, "containers") == []


def test_container_enum_fields_outside_their_enum(cdaemon):  # noqa: F811
    d = cdaemon
    pod = run_pod(d)
    config = container_config(d)
    config.linux.security_context.namespace_options.ipc = 7
    code, details = refusal(lambda: create(d, pod, config))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert "config.linux.security_context.namespace_options.ipc: 7 is not" in details
    config = container_config(d)
    config.mounts.append(api_pb2.Mount(container_path="/data", host_path="/tmp",
                                       propagation=5))
    code, details = refusal(lambda: create(d, pod, config))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert "config.mounts[0].propagation: 5 is not a MountPropagation value" in details
    assert records(d, "containers") == []


# ---- numbers of ExecSync, StopContainer, UpdateContainerResources -------------------------

def running_container(d, command=("sleep", "1000")) -> str:
    pod = run_pod(d)
    cid = create(d, pod, container_config(d, command=command))
    d.runtime.StartContainer(api_pb2.StartContainerRequest(container_id=cid))
    return cid


@pytest.mark.parametrize("timeout", [10**12, 2**63 - 1, 2**31, -1, -2**63])
def test_exec_sync_timeout_out_of_range_is_invalid(cdaemon, timeout):  # noqa: F811
    d = cdaemon
    cid = running_container(d)
    code, details = refusal(lambda: d.runtime.ExecSync(api_pb2.ExecSyncRequest(
        container_id=cid, cmd=["true"], timeout=timeout)))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert details.startswith("ExecSync: timeout: ")


@pytest.mark.parametrize("timeout", [2**31 - 1, 30 * 86400])
def test_exec_sync_longest_timeouts_work(cdaemon, timeout):  # noqa: F811
    """A probe's timeoutSeconds may be any int32: weeks or decades of
    seconds wait in steps (epoll's own limit is about 24.8 days)."""
    d = cdaemon
    cid = running_container(d)
    r = d.runtime.ExecSync(api_pb2.ExecSyncRequest(container_id=cid, cmd=["echo", "hi"],
                                                   timeout=timeout), timeout=30)
    assert (r.stdout, r.exit_code) == (b"hi\n", 0)


@pytest.mark.parametrize("timeout", [2**63 - 1, -2**63])
def test_stop_container_takes_any_int64_timeout(cdaemon, timeout):  # noqa: F811
    d = cdaemon
    cid = running_container(d, ("sh", "-c", "trap 'exit 0' TERM; while :; do sleep 0.1; done"))
    d.runtime.StopContainer(api_pb2.StopContainerRequest(container_id=cid, timeout=timeout),
                            timeout=30)
    assert wait_exited(d, cid).state == api_pb2.CONTAINER_EXITED


@pytest.mark.parametrize("field, value, message", [
    ("oom_score_adj", 1001, "linux.oom_score_adj: must be in [-1000, 1000], got 1001"),
    ("oom_score_adj", -2**63, "linux.oom_score_adj: must be in [-1000, 1000]"),
    ("cpu_shares", 2**63 - 1, "linux.cpu_shares: must be in [2, 262144]"),
    ("memory_limit_in_bytes", -1, "linux.memory_limit_in_bytes: must be >= 0"),
])
def test_update_resources_numbers_are_range_checked(cdaemon, field, value, message):  # noqa: F811
    d = cdaemon
    cid = running_container(d)
    linux = api_pb2.LinuxContainerResources(**{field: value})
    code, details = refusal(lambda: d.runtime.UpdateContainerResources(
        api_pb2.UpdateContainerResourcesRequest(container_id=cid, linux=linux)))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert details == f"UpdateContainerResources: {message}" or \
        details.startswith(f"UpdateContainerResources: {message}")
    assert cstatus(d, cid).status.state == api_pb2.CONTAINER_RUNNING


# ---- log paths (found by probing after the fuzz test: INTERNAL before) -----------------

def pod_with_log_directory(d, directory: str) -> tuple[str, api_pb2.PodSandboxConfig]:
    config = api_pb2.PodSandboxConfig(
        metadata=api_pb2.PodSandboxMetadata(name="logs", namespace="default", uid="uid-logs"),
        hostname="logs", log_directory=directory)
    config.linux.security_context.namespace_options.network = api_pb2.NODE
    config.linux.security_context.namespace_options.pid = api_pb2.CONTAINER
    pod = d.runtime.RunPodSandbox(api_pb2.RunPodSandboxRequest(config=config),
                                  timeout=60).pod_sandbox_id
    return pod, config


def test_a_log_directory_no_directory_can_be_made_in(cdaemon):  # noqa: F811
    """/proc/self/<name> cannot be made: was FileNotFoundError (INTERNAL)."""
    d = cdaemon
    pod, config = pod_with_log_directory(d, "/proc/self")
    code, details = refusal(lambda: create(d, pod, container_config(d), config))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert details.startswith("CreateContainer: config.log_path: cannot make the directory "
                              "of '/proc/self/c/0.log'")
    assert records(d, "containers") == []


def test_a_log_path_deeper_than_makedirs_goes(cdaemon):  # noqa: F811
    """1500 levels: was RecursionError in os.makedirs (INTERNAL)."""
    d = cdaemon
    pod = run_pod(d)
    config = container_config(d)
    config.log_path = "a/" * 1500 + "x.log"
    code, details = refusal(lambda: create(d, pod, config))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert details == "CreateContainer: config.log_path: is 1501 levels deep (at most 32)"
    assert records(d, "containers") == []


def test_a_log_directory_longer_than_a_path_is_refused(cdaemon):  # noqa: F811
    """Was accepted by RunPodSandbox, then ENAMETOOLONG (INTERNAL) at CreateContainer."""
    d = cdaemon
    code, details = refusal(lambda: pod_with_log_directory(d, "/" + "z" * 5000))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert details == ("RunPodSandbox: config.log_directory: is 5001 bytes long, more than a "
                       "path can be (4095)")
    assert records(d, "sandboxes") == []
