"""Shared builders for the spec tests (one varied field per case), and the
end-to-end checks of build_container_spec itself."""
from __future__ import annotations

import json
from typing import Any

import pytest
from google.protobuf.message import Message

from crio_native._proto import api_pb2
from crio_native.errors import InvalidArgument
from crio_native.sandbox.record import SandboxRecord
from crio_native.spec import STEPS, SpecInputs, build_container_spec
from crio_native.spec.inputs import SpecBuild, new_build

POD_DIR = "/run/crio-native/pods/p1"


def base_config() -> api_pb2.ContainerConfig:
    return api_pb2.ContainerConfig(
        metadata=api_pb2.ContainerMetadata(name="app"),
        image=api_pb2.ImageSpec(image="docker.io/library/busybox:latest"),
        log_path="app/0.log")


def base_sandbox(**changes: Any) -> SandboxRecord:
    record = SandboxRecord(
        id="p1", name="web", namespace="default", uid="uid-1", attempt=0, pid_mode=1,
        pins={"net": "/run/crio-native/ns/net/p1", "ipc": "/run/crio-native/ns/ipc/p1",
              "uts": "/run/crio-native/ns/uts/p1"},
        directory=POD_DIR, shm_path=POD_DIR + "/shm", log_directory="/var/log/pods/default_web",
        cgroup_parent="/kubepods/besteffort/poduid-1")
    for key, value in changes.items():
        setattr(record, key, value)
    return record


def set_field(msg: Message, dotted: str, value: Any) -> None:
    """config_with's worker: "linux.security_context.run_as_user.value" = 5."""
    *parents, last = dotted.split(".")
    for name in parents:
        msg = getattr(msg, name)
    current = getattr(msg, last)
    if isinstance(value, dict):
        current.clear()
        current.update(value)
    elif isinstance(value, list):
        del current[:]
        for item in value:
            if isinstance(item, Message):
                current.add().CopyFrom(item)
            else:
                current.append(item)
    elif isinstance(value, Message):
        current.CopyFrom(value)
    else:
        setattr(msg, last, value)


def config_with(**fields: Any) -> api_pb2.ContainerConfig:
    """base_config() with fields set; "__" separates nested names."""
    cfg = base_config()
    for key, value in fields.items():
        set_field(cfg, key.replace("__", "."), value)
    return cfg


def make_inputs(config: api_pb2.ContainerConfig | None = None, *,
                image: dict | None = None, sandbox: SandboxRecord | None = None,
                **kw: Any) -> SpecInputs:
    kw.setdefault("machine", "x86_64")
    return SpecInputs(container_id="c1", config=config or base_config(),
                      sandbox=sandbox or base_sandbox(),
                      image_config={"config": image if image is not None else {"Cmd": ["sh"]}},
                      rootfs=kw.pop("rootfs", ""), **kw)


def apply(option, inputs: SpecInputs, build: SpecBuild | None = None) -> SpecBuild:
    build = build or new_build()
    option(build, inputs)
    return build


# ---- build_container_spec ---------------------------------------------------

def test_minimal_request_gives_a_complete_spec():
    b = build_container_spec(make_inputs(image={"Cmd": ["sh"], "Env": ["A=1"]}))
    spec = b.spec
    assert spec["ociVersion"] == "1.1.0"
    assert spec["process"]["args"] == ["sh"]
    assert spec["process"]["cwd"] == "/"
    assert "A=1" in spec["process"]["env"]
    assert [m["destination"] for m in spec["mounts"]] == [
        "/proc", "/dev", "/dev/pts", "/dev/shm", "/dev/mqueue", "/sys", "/sys/fs/cgroup",
        "/etc/hostname", "/etc/resolv.conf", "/etc/hosts"]
    assert "seccomp" not in spec["linux"]    # none asked for: unconfined, as CRI-O 1.36
    assert spec["linux"]["cgroupsPath"] == "/kubepods/besteffort/poduid-1/crio-c1"
    assert b.log_path == "/var/log/pods/default_web/app/0.log"
    assert b.stop_signal == "SIGTERM"
    json.dumps(spec)   # plain JSON all the way down


def test_privileged_request_end_to_end():
    cfg = config_with(linux__security_context__privileged=True)
    spec = build_container_spec(make_inputs(cfg)).spec
    assert "seccomp" not in spec["linux"]
    assert "maskedPaths" not in spec["linux"]
    assert len(spec["process"]["capabilities"]["bounding"]) > 30
    assert spec["linux"]["resources"]["devices"][0] == {"allow": True, "access": "rwm"}


def test_steps_are_named_with_options():
    assert all(step.__name__.startswith("with_") for step in STEPS)
    names = [s.__name__ for s in STEPS]
    assert names.index("with_capabilities") < names.index("with_seccomp")
    assert names.index("with_user") < names.index("with_cdi_devices")
    assert len(names) == len(set(names))


def test_bad_field_stops_the_build_naming_it():
    cfg = config_with(working_dir="relative")
    with pytest.raises(InvalidArgument, match=r"^CreateContainer: config\.working_dir: "):
        build_container_spec(make_inputs(cfg))
