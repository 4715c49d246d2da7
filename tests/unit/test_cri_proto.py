"""Regression checks for the CRI runtime.v1 wire contract.

These tests load the stubs generated from proto/runtime/v1/api.proto
(``crio_native._proto.api_pb2``) and pin the parts of the schema the kubelet
and crictl depend on: service/method names, streaming-ness, selected field
numbers/types and a known byte encoding. The expected values are taken from
the upstream k8s.io/cri-api runtime.v1 definition (cri-api v0.36.2,
Kubernetes 1.36).
"""

from google.protobuf import descriptor

from crio_native._proto import api_pb2

FD = descriptor.FieldDescriptor

EXPECTED_RUNTIME_METHODS = sorted([
    "Attach",
    "CheckpointContainer",
    "ContainerStats",
    "ContainerStatus",
    "CreateContainer",
    "Exec",
    "ExecSync",
    "GetContainerEvents",
    "ListContainerStats",
    "ListContainers",
    "ListMetricDescriptors",
    "ListPodSandbox",
    "ListPodSandboxMetrics",
    "ListPodSandboxStats",
    "PodSandboxStats",
    "PodSandboxStatus",
    "PortForward",
    "RemoveContainer",
    "RemovePodSandbox",
    "ReopenContainerLog",
    "RunPodSandbox",
    "RuntimeConfig",
    "StartContainer",
    "Status",
    "StopContainer",
    "StopPodSandbox",
    "StreamContainerStats",
    "StreamContainers",
    "StreamPodSandboxMetrics",
    "StreamPodSandboxStats",
    "StreamPodSandboxes",
    "UpdateContainerResources",
    "UpdatePodSandboxResources",
    "UpdateRuntimeConfig",
    "Version",
])

EXPECTED_IMAGE_METHODS = sorted([
    "ImageFsInfo",
    "ImageStatus",
    "ListImages",
    "PullImage",
    "RemoveImage",
    "StreamImages",
])

# (service, method) -> (input message, output message); only server streaming.
EXPECTED_SERVER_STREAMING = {
    ("RuntimeService", "GetContainerEvents"): ("GetEventsRequest", "ContainerEventResponse"),
    ("RuntimeService", "StreamPodSandboxes"): ("StreamPodSandboxesRequest", "StreamPodSandboxesResponse"),
    ("RuntimeService", "StreamContainers"): ("StreamContainersRequest", "StreamContainersResponse"),
    ("RuntimeService", "StreamContainerStats"): ("StreamContainerStatsRequest", "StreamContainerStatsResponse"),
    ("RuntimeService", "StreamPodSandboxStats"): ("StreamPodSandboxStatsRequest", "StreamPodSandboxStatsResponse"),
    ("RuntimeService", "StreamPodSandboxMetrics"): ("StreamPodSandboxMetricsRequest", "StreamPodSandboxMetricsResponse"),
    ("ImageService", "StreamImages"): ("StreamImagesRequest", "StreamImagesResponse"),
}

# (message, field) -> (number, FieldDescriptor type, type_name or None, repeated?)
SPOT_FIELDS = [
    ("VersionRequest", "version", 1, FD.TYPE_STRING, None, False),
    ("VersionResponse", "version", 1, FD.TYPE_STRING, None, False),
    ("VersionResponse", "runtime_name", 2, FD.TYPE_STRING, None, False),
    ("VersionResponse", "runtime_version", 3, FD.TYPE_STRING, None, False),
    ("VersionResponse", "runtime_api_version", 4, FD.TYPE_STRING, None, False),
    ("PodSandboxConfig", "linux", 8, FD.TYPE_MESSAGE, "LinuxPodSandboxConfig", False),
    ("PodSandboxConfig", "windows", 9, FD.TYPE_MESSAGE, "WindowsPodSandboxConfig", False),
    ("ContainerConfig", "linux", 15, FD.TYPE_MESSAGE, "LinuxContainerConfig", False),
    ("ContainerConfig", "CDI_devices", 17, FD.TYPE_MESSAGE, "CDIDevice", True),
    ("ContainerConfig", "stop_signal", 18, FD.TYPE_ENUM, "Signal", False),
    ("LinuxContainerSecurityContext", "run_as_group", 12, FD.TYPE_MESSAGE, "Int64Value", False),
    ("LinuxContainerSecurityContext", "seccomp", 15, FD.TYPE_MESSAGE, "SecurityProfile", False),
    ("LinuxContainerSecurityContext", "apparmor", 16, FD.TYPE_MESSAGE, "SecurityProfile", False),
    ("LinuxContainerSecurityContext", "supplemental_groups_policy", 17, FD.TYPE_ENUM,
     "SupplementalGroupsPolicy", False),
    ("LinuxSandboxSecurityContext", "run_as_group", 8, FD.TYPE_MESSAGE, "Int64Value", False),
    ("LinuxSandboxSecurityContext", "supplemental_groups_policy", 11, FD.TYPE_ENUM,
     "SupplementalGroupsPolicy", False),
    ("ContainerStatus", "reason", 10, FD.TYPE_STRING, None, False),
    ("ContainerStatus", "image_id", 17, FD.TYPE_STRING, None, False),
    ("ContainerStatus", "user", 18, FD.TYPE_MESSAGE, "ContainerUser", False),
    ("ContainerStatus", "stop_signal", 19, FD.TYPE_ENUM, "Signal", False),
    ("ImageSpec", "annotations", 2, FD.TYPE_MESSAGE, "ImageSpec.AnnotationsEntry", True),
    ("ImageSpec", "user_specified_image", 18, FD.TYPE_STRING, None, False),
    ("ImageSpec", "runtime_handler", 19, FD.TYPE_STRING, None, False),
    ("ImageSpec", "image_ref", 20, FD.TYPE_STRING, None, False),
    ("PullImageRequest", "sandbox_config", 3, FD.TYPE_MESSAGE, "PodSandboxConfig", False),
    ("Mount", "uidMappings", 6, FD.TYPE_MESSAGE, "IDMapping", True),
    ("Mount", "image_sub_path", 10, FD.TYPE_STRING, None, False),
    # bytes since cri-api v0.36.2: a kubelet may send env values that are not UTF-8
    ("KeyValue", "key", 1, FD.TYPE_STRING, None, False),
    ("KeyValue", "value", 2, FD.TYPE_BYTES, None, False),
    ("ExecSyncResponse", "stdout", 1, FD.TYPE_BYTES, None, False),
    ("PodSandboxStatusResponse", "timestamp", 4, FD.TYPE_INT64, None, False),
    ("LinuxContainerResources", "memory_swap_limit_in_bytes", 10, FD.TYPE_INT64, None, False),
    ("PsiData", "Avg10", 2, FD.TYPE_DOUBLE, None, False),
    ("ContainerEventResponse", "containers_statuses", 5, FD.TYPE_MESSAGE, "ContainerStatus", True),
    ("StatusResponse", "features", 4, FD.TYPE_MESSAGE, "RuntimeFeatures", False),
]


# Every field of these messages, as upstream has them: no release of cri-api
# has an audit_request_id in ExecRequest or AttachRequest.
EXACT_MESSAGES = {
    "ExecRequest": ["container_id", "cmd", "tty", "stdin", "stdout", "stderr"],
    "AttachRequest": ["container_id", "stdin", "tty", "stdout", "stderr"],
    "KeyValue": ["key", "value"],
}


def _is_repeated(field):
    # protobuf >= 5.x exposes is_repeated; older releases only have label
    # (which newer releases removed).
    if hasattr(field, "is_repeated"):
        return field.is_repeated
    return field.label == FD.LABEL_REPEATED


def _method_names(service_name):
    svc = api_pb2.DESCRIPTOR.services_by_name[service_name]
    return sorted(m.name for m in svc.methods)


def test_package_and_service_full_names():
    # The gRPC paths are "/runtime.v1.RuntimeService/<Method>" etc.
    assert api_pb2.DESCRIPTOR.package == "runtime.v1"
    assert sorted(api_pb2.DESCRIPTOR.services_by_name) == ["ImageService", "RuntimeService"]
    assert api_pb2.DESCRIPTOR.services_by_name["RuntimeService"].full_name == "runtime.v1.RuntimeService"
    assert api_pb2.DESCRIPTOR.services_by_name["ImageService"].full_name == "runtime.v1.ImageService"


def test_runtime_service_methods():
    assert _method_names("RuntimeService") == EXPECTED_RUNTIME_METHODS
    assert len(EXPECTED_RUNTIME_METHODS) == 35


def test_image_service_methods():
    assert _method_names("ImageService") == EXPECTED_IMAGE_METHODS
    assert len(EXPECTED_IMAGE_METHODS) == 6


def test_streaming_methods():
    seen = {}
    for svc_name in ("RuntimeService", "ImageService"):
        svc = api_pb2.DESCRIPTOR.services_by_name[svc_name]
        for m in svc.methods:
            assert not m.client_streaming, f"{svc_name}.{m.name} must not be client-streaming"
            if m.server_streaming:
                seen[(svc_name, m.name)] = (m.input_type.name, m.output_type.name)
    assert seen == EXPECTED_SERVER_STREAMING


def test_unary_method_types():
    svc = api_pb2.DESCRIPTOR.services_by_name["RuntimeService"]
    m = svc.methods_by_name["Version"]
    assert (m.input_type.full_name, m.output_type.full_name) == (
        "runtime.v1.VersionRequest", "runtime.v1.VersionResponse")
    assert not m.server_streaming
    img = api_pb2.DESCRIPTOR.services_by_name["ImageService"]
    m = img.methods_by_name["ImageFsInfo"]
    assert (m.input_type.name, m.output_type.name) == ("ImageFsInfoRequest", "ImageFsInfoResponse")


def test_spot_checked_fields():
    problems = []
    for msg_name, field_name, number, ftype, type_name, repeated in SPOT_FIELDS:
        msg = api_pb2.DESCRIPTOR.message_types_by_name[msg_name]
        field = msg.fields_by_name.get(field_name)
        if field is None:
            problems.append(f"{msg_name}.{field_name} missing")
            continue
        if field.number != number:
            problems.append(f"{msg_name}.{field_name}: number {field.number} != {number}")
        if field.type != ftype:
            problems.append(f"{msg_name}.{field_name}: type {field.type} != {ftype}")
        if type_name is not None:
            sub = field.message_type or field.enum_type
            if sub is None or sub.full_name != f"runtime.v1.{type_name}":
                problems.append(f"{msg_name}.{field_name}: type_name mismatch")
        is_repeated = _is_repeated(field)
        if is_repeated != repeated:
            problems.append(f"{msg_name}.{field_name}: repeated={is_repeated} expected {repeated}")
    assert not problems, "\n".join(problems)


def test_messages_have_exactly_upstreams_fields():
    for msg_name, names in EXACT_MESSAGES.items():
        msg = api_pb2.DESCRIPTOR.message_types_by_name[msg_name]
        assert [f.name for f in msg.fields] == names, msg_name
        assert [f.number for f in msg.fields] == list(range(1, len(names) + 1)), msg_name


def test_key_value_carries_bytes_that_are_not_utf8():
    wire = api_pb2.KeyValue(key="K", value=b"\xff\x00\xc3").SerializeToString()
    assert wire == b"\n\x01K\x12\x03\xff\x00\xc3"
    assert api_pb2.KeyValue.FromString(wire).value == b"\xff\x00\xc3"


def test_selected_enums():
    e = api_pb2.DESCRIPTOR.enum_types_by_name
    assert e["ContainerState"].values_by_name["CONTAINER_UNKNOWN"].number == 3
    assert e["PodSandboxState"].values_by_name["SANDBOX_NOTREADY"].number == 1
    assert e["NamespaceMode"].values_by_name["TARGET"].number == 3
    assert e["Signal"].values_by_name["SIGKILL"].number == 13
    assert e["Signal"].values_by_name["SIGRTMAX"].number == 65
    assert e["ContainerEventType"].values_by_name["CONTAINER_DELETED_EVENT"].number == 3
    assert e["CgroupDriver"].values_by_name["CGROUPFS"].number == 1
    profile = api_pb2.SecurityProfile.ProfileType
    assert profile.Value("Localhost") == 2


def test_version_request_wire_bytes():
    msg = api_pb2.VersionRequest(version="0.1.0")
    data = msg.SerializeToString()
    assert data == b"\n\x050.1.0"
    parsed = api_pb2.VersionRequest.FromString(data)
    assert parsed == msg
    assert parsed.version == "0.1.0"


def test_nested_message_wire_bytes():
    # PortMapping{protocol=UDP(1), container_port=80} -> tag1 varint 1, tag2 varint 80
    pm = api_pb2.PortMapping(protocol=api_pb2.UDP, container_port=80)
    assert pm.SerializeToString() == b"\x08\x01\x10P"
    # ContainerConfig.linux is field 15 (length-delimited) -> key 0x7a.
    cfg = api_pb2.ContainerConfig(
        linux=api_pb2.LinuxContainerConfig(
            resources=api_pb2.LinuxContainerResources(cpu_shares=2)))
    assert cfg.SerializeToString() == b"z\x04\n\x02\x18\x02"
    assert api_pb2.ContainerConfig.FromString(cfg.SerializeToString()) == cfg
