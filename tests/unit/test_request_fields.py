"""The edge's request checks (issue 17), without a daemon: enum numbers
outside their enum and NUL bytes (cri/request_fields.py), names and paths
of pods and containers (cri/names.py, cri/sandbox/check.py,
cri/container/check.py), ExecSync's timeout, and the spec helpers they
share.  Each refusal is INVALID_ARGUMENT naming the RPC and the field."""
from __future__ import annotations

import errno

import pytest

from crio_native._proto import api_pb2
from crio_native.cri.container.check import check_container_config
from crio_native.cri.container.exec_sync import MAX_TIMEOUT_SECONDS, check_timeout
from crio_native.cri.names import check_name, control_character
from crio_native.cri.request_fields import check_request
from crio_native.cri.sandbox.check import check_pod_config
from crio_native.errors import InvalidArgument
from crio_native.spec.pod_resources import pod_resources
from crio_native.spec.process import log_path_problem, stop_signal_name


def refused(fn, *args, **kwargs) -> str:
    with pytest.raises(InvalidArgument) as info:
        fn(*args, **kwargs)
    return str(info.value)


def pod(**kw) -> api_pb2.PodSandboxConfig:
    kw.setdefault("log_directory", "/var/log/pods/x")
    return api_pb2.PodSandboxConfig(metadata=api_pb2.PodSandboxMetadata(
        name="web", namespace="default", uid="3f1c-77"), **kw)


def container(**kw) -> api_pb2.ContainerConfig:
    kw.setdefault("metadata", api_pb2.ContainerMetadata(name="c"))
    kw.setdefault("log_path", "c/0.log")
    return api_pb2.ContainerConfig(image=api_pb2.ImageSpec(image="busybox"), **kw)


# ---- enums ---------------------------------------------------------------------------

def _bad_enums():
    stop = api_pb2.CreateContainerRequest(config=container(stop_signal=99))
    stop_big = api_pb2.CreateContainerRequest(config=container(stop_signal=1048576))
    pid = api_pb2.RunPodSandboxRequest(config=pod())
    pid.config.linux.security_context.namespace_options.pid = 99
    proto = api_pb2.RunPodSandboxRequest(config=pod(port_mappings=[
        api_pb2.PortMapping(container_port=80), api_pb2.PortMapping(protocol=7)]))
    prop = api_pb2.CreateContainerRequest(config=container(mounts=[
        api_pb2.Mount(container_path="/a"), api_pb2.Mount(container_path="/b", propagation=-1)]))
    seccomp = api_pb2.CreateContainerRequest(config=container())
    seccomp.config.linux.security_context.seccomp.profile_type = 3
    policy = api_pb2.RunPodSandboxRequest(config=pod())
    policy.config.linux.security_context.supplemental_groups_policy = 2
    userns = api_pb2.RunPodSandboxRequest(config=pod())
    userns.config.linux.security_context.namespace_options.userns_options.mode = 2**31 - 1
    state = api_pb2.ListContainersRequest(filter=api_pb2.ContainerFilter(
        state=api_pb2.ContainerStateValue(state=4)))
    return [
        ("CreateContainer", stop, "config.stop_signal: 99 is not a Signal value (want 0..65)"),
        ("CreateContainer", stop_big, "config.stop_signal: 1048576 is not a Signal value"),
        ("RunPodSandbox", pid, "config.linux.security_context.namespace_options.pid: 99 is "
                               "not a NamespaceMode value (want 0..3)"),
        ("RunPodSandbox", proto, "config.port_mappings[1].protocol: 7 is not a Protocol"),
        ("CreateContainer", prop, "config.mounts[1].propagation: -1 is not a MountPropagation"),
        ("CreateContainer", seccomp, "config.linux.security_context.seccomp.profile_type: 3 "
                                     "is not a ProfileType value"),
        ("RunPodSandbox", policy, "config.linux.security_context.supplemental_groups_policy: "
                                  "2 is not a SupplementalGroupsPolicy value (want 0..1)"),
        ("RunPodSandbox", userns, "config.linux.security_context.namespace_options."
                                  "userns_options.mode: 2147483647 is not a NamespaceMode"),
        ("ListContainers", state, "filter.state.state: 4 is not a ContainerState value"),
    ]


@pytest.mark.parametrize("rpc, request_, expected", _bad_enums(),
                         ids=[e[2].split(":")[0] for e in _bad_enums()])
def test_an_enum_number_outside_its_enum_is_refused(rpc, request_, expected):
    assert refused(check_request, rpc, request_).startswith(f"{rpc}: {expected}")


def test_every_defined_enum_value_passes():
    for signal in api_pb2.Signal.values():
        check_request("CreateContainer", api_pb2.CreateContainerRequest(
            config=container(stop_signal=signal)))
    request = api_pb2.RunPodSandboxRequest(config=pod())
    for mode in api_pb2.NamespaceMode.values():
        request.config.linux.security_context.namespace_options.network = mode
        check_request("RunPodSandbox", request)


# ---- NUL bytes --------------------------------------------------------------------------

def _nul_strings():
    return [
        ("RunPodSandbox", api_pb2.RunPodSandboxRequest(config=pod(hostname="a\0")),
         "config.hostname: contains a NUL byte"),
        ("RunPodSandbox", api_pb2.RunPodSandboxRequest(config=api_pb2.PodSandboxConfig(
            metadata=api_pb2.PodSandboxMetadata(name="we\0b"))),
         "config.metadata.name: contains a NUL byte"),
        ("RunPodSandbox", api_pb2.RunPodSandboxRequest(config=api_pb2.PodSandboxConfig(
            metadata=api_pb2.PodSandboxMetadata(name="w", namespace="\0"))),
         "config.metadata.namespace: contains a NUL byte"),
        ("RunPodSandbox", api_pb2.RunPodSandboxRequest(config=pod(
            linux=api_pb2.LinuxPodSandboxConfig(cgroup_parent="/kubepods\0"))),
         "config.linux.cgroup_parent: contains a NUL byte"),
        ("RunPodSandbox", api_pb2.RunPodSandboxRequest(config=pod(labels={"a\0": "b"})),
         "config.labels: key 'a\\x00' contains a NUL byte"),
        ("RunPodSandbox", api_pb2.RunPodSandboxRequest(config=pod(labels={"a": "b\0"})),
         "config.labels['a']: contains a NUL byte"),
        ("RunPodSandbox", api_pb2.RunPodSandboxRequest(config=pod(annotations={"\0": "b"})),
         "config.annotations: key '\\x00' contains a NUL byte"),
        ("CreateContainer", api_pb2.CreateContainerRequest(config=container(
            command=["sh", "-c\0"])), "config.command[1]: contains a NUL byte"),
        ("CreateContainer", api_pb2.CreateContainerRequest(config=container(
            log_path="c/\0.log")), "config.log_path: contains a NUL byte"),
        ("ExecSync", api_pb2.ExecSyncRequest(container_id="x", cmd=["true\0"]),
         "cmd[0]: contains a NUL byte"),
        ("StopContainer", api_pb2.StopContainerRequest(container_id="ab\0"),
         "container_id: contains a NUL byte"),
    ]


@pytest.mark.parametrize("rpc, request_, expected", _nul_strings(),
                         ids=[e[2].split(":")[0] for e in _nul_strings()])
def test_a_nul_byte_in_a_string_is_refused(rpc, request_, expected):
    assert refused(check_request, rpc, request_) == f"{rpc}: {expected}"


def test_free_text_may_hold_nul_bytes():
    check_request("RunPodSandbox", api_pb2.RunPodSandboxRequest(
        config=pod(annotations={"note": "a\0b"})))
    check_request("PullImage", api_pb2.PullImageRequest(
        image=api_pb2.ImageSpec(image="busybox", annotations={"k": "\0"}),
        auth=api_pb2.AuthConfig(username="u\0", password="p\0w", auth="\0")))


def test_what_is_not_a_message_passes():
    check_request("Version", None)


# ---- names and paths ----------------------------------------------------------------------

@pytest.mark.parametrize("text, found", [("web", None), ("wéb-\u4e16", None), ("a\nb", "\n"),
                                         ("\x1b[31m", "\x1b"), ("x\x7f", "\x7f"),
                                         ("x\u0085", "\u0085"), ("\0", "\0")])
def test_control_character(text, found):
    assert control_character(text) == found


def test_check_name_names_the_field_and_the_character():
    assert refused(check_name, "R", "config.metadata.name", "a\tb") == \
        "R: config.metadata.name: contains the control character '\\t': 'a\\tb'"
    assert "contains ';'" in refused(check_name, "R", "f", "a;b", separators=";=")
    check_name("R", "f", "a.b-c_d", separators=";=")


@pytest.mark.parametrize("field, value, fragment", [
    ("name", "web;K8S_POD_NAMESPACE=kube-system", "contains ';'"),
    ("namespace", "a=b", "contains '='"),
    ("uid", "u\nid", "control character"),
])
def test_pod_metadata_that_would_split_cni_args_is_refused(field, value, fragment):
    config = pod()
    setattr(config.metadata, field, value)
    message = refused(check_pod_config, config)
    assert message.startswith(f"RunPodSandbox: config.metadata.{field}: ") and fragment in message


def test_pod_hostname_with_a_newline_is_refused():
    assert refused(check_pod_config, pod(hostname="web\n")) == \
        "RunPodSandbox: config.hostname: contains the control character '\\n': 'web\\n'"
    check_pod_config(pod(hostname="web-0.svc"))


@pytest.mark.parametrize("parent, fragment", [
    ("\n", "contains the control character '\\n'"),
    ("/kubepods/\tburstable", "contains the control character"),
    ("/kubepods/" + "p" * 256, "is longer than 255 bytes"),
    ("/" + "\u4e16" * 86, "is longer than 255 bytes"),      # 258 bytes of UTF-8
])
def test_pod_cgroup_parent_no_directory_can_be_named(parent, fragment):
    config = pod(linux=api_pb2.LinuxPodSandboxConfig(cgroup_parent=parent))
    message = refused(check_pod_config, config)
    assert message.startswith("RunPodSandbox: config.linux.cgroup_parent: ") and fragment in message


def test_pod_cgroup_parent_forms_pass_to_the_drivers():
    for parent in ("", "/kubepods/burstable/pod1", "kubepods-pod1.slice", "/" + "p" * 255):
        check_pod_config(pod(linux=api_pb2.LinuxPodSandboxConfig(cgroup_parent=parent)))


def test_pod_log_directory_must_be_absolute():
    assert refused(check_pod_config, pod(log_directory="logs/x")) == \
        "RunPodSandbox: config.log_directory: must be an absolute path, got 'logs/x'"
    check_pod_config(pod(log_directory=""))


def test_pod_overhead_that_overflows_int64_is_refused():
    config = pod()
    config.linux.resources.memory_limit_in_bytes = 2**63 - 1
    config.linux.overhead.memory_limit_in_bytes = 1
    assert "config.linux.overhead.memory_limit_in_bytes: 1 added to" in refused(
        check_pod_config, config)
    config.linux.resources.memory_limit_in_bytes = 2**62
    config.linux.overhead.memory_limit_in_bytes = 2**62
    assert "more than" in refused(pod_resources, config.linux)
    config.linux.overhead.memory_limit_in_bytes = 2**20
    assert pod_resources(config.linux)["memory"]["limit"] == 2**62 + 2**20


@pytest.mark.parametrize("config, expected", [
    (container(log_path="../x.log"), "config.log_path: must be relative to the pod's log"),
    (container(log_path="/var/log/x"), "config.log_path: must be relative"),
    (container(log_path="c/"), "config.log_path: must name a file"),
    (container(log_path="c/."), "config.log_path: must name a file"),
    (container(metadata=api_pb2.ContainerMetadata(name="c\r")),
     "config.metadata.name: contains the control character"),
    (container(linux=api_pb2.LinuxContainerConfig(resources=api_pb2.LinuxContainerResources(
        oom_score_adj=1001))), "config.linux.resources.oom_score_adj: must be in [-1000, 1000]"),
    (container(linux=api_pb2.LinuxContainerConfig(resources=api_pb2.LinuxContainerResources(
        cpu_shares=2**63 - 1))), "config.linux.resources.cpu_shares: must be in [2, 262144]"),
    (container(linux=api_pb2.LinuxContainerConfig(resources=api_pb2.LinuxContainerResources(
        memory_limit_in_bytes=-2**63))), "config.linux.resources.memory_limit_in_bytes"),
], ids=lambda v: v if isinstance(v, str) else None)
def test_container_config_is_checked_at_the_edge(config, expected):
    assert refused(check_container_config, config).startswith(f"CreateContainer: {expected}")


@pytest.mark.parametrize("rel, fragment", [
    ("a/" * 33 + "x.log", "is 34 levels deep (at most 32)"),
    ("a/" * 1500 + "x.log", "levels deep"),          # os.makedirs recursed past its limit
    ("c/" + "y" * 256 + ".log", "has a component of 260 bytes (at most 255)"),
    ("c/" + ("y" * 250 + "/") * 17 + "0.log", "more than a path can be (4095)"),
])
def test_log_path_the_kernel_or_makedirs_would_refuse(rel, fragment):
    assert fragment in refused(check_container_config, container(log_path=rel))


@pytest.mark.parametrize("directory, fragment", [
    ("/" + "z" * 5000, "is 5001 bytes long, more than a path can be (4095)"),
    ("/var/log/" + "z" * 300, "has a component of 300 bytes (at most 255)"),
    ("/var/log/pods/x\n", "contains the control character"),
    (("/" + "d" * 200) * 21, "more than a path can be"),
])
def test_pod_log_directory_the_kernel_would_refuse(directory, fragment):
    message = refused(check_pod_config, pod(log_directory=directory))
    assert message.startswith("RunPodSandbox: config.log_directory: ") and fragment in message


def test_prepare_log_names_the_log_path_when_its_directory_cannot_be_made(tmp_path,
                                                                          monkeypatch):
    from crio_native.container import prepare
    from crio_native.errors import FailedPrecondition

    (tmp_path / "file").write_text("")
    message = refused(prepare.prepare_log, str(tmp_path / "file" / "c" / "0.log"))
    assert message.startswith("CreateContainer: config.log_path: cannot make the directory of ")
    assert message.endswith(": Not a directory")

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(prepare.os, "makedirs", full)
    with pytest.raises(FailedPrecondition, match="config.log_path: .*No space left"):
        prepare.prepare_log(str(tmp_path / "c" / "0.log"))


def test_a_good_container_config_passes():
    check_container_config(container())
    check_container_config(container(log_path=""))
    assert log_path_problem("c/0.log") is None and log_path_problem("0.log") is None


# ---- numbers ------------------------------------------------------------------------------

@pytest.mark.parametrize("timeout", [10**12, 2**63 - 1, MAX_TIMEOUT_SECONDS + 1])
def test_exec_sync_timeout_beyond_int32_is_refused(timeout):
    message = refused(check_timeout, timeout)
    assert message.startswith(f"ExecSync: timeout: {timeout} s is more than 2147483647 s")


@pytest.mark.parametrize("timeout", [-1, -2**63])
def test_exec_sync_negative_timeout_is_refused(timeout):
    assert refused(check_timeout, timeout).startswith("ExecSync: timeout: must not be negative")


@pytest.mark.parametrize("timeout", [0, 1, 3600, MAX_TIMEOUT_SECONDS])
def test_exec_sync_timeout_in_range_passes(timeout):
    check_timeout(timeout)


@pytest.mark.parametrize("signal", [99, 1048576, -1])
def test_spec_stop_signal_outside_the_enum_is_invalid(signal):
    message = refused(stop_signal_name, container(stop_signal=signal), {})
    assert message == f"CreateContainer: config.stop_signal: {signal} is not a Signal value"


def test_spec_stop_signal_in_the_enum():
    assert stop_signal_name(container(stop_signal=api_pb2.SIGUSR1), {}) == "SIGUSR1"
    assert stop_signal_name(container(), {"StopSignal": "QUIT"}) == "SIGQUIT"
