"""linux.devices and device cgroup rules: request devices, directories,
permissions, privileged host devices."""
from __future__ import annotations

import os

import pytest

from crio_native._proto import api_pb2
from crio_native.errors import InvalidArgument
from crio_native.spec import devices
from crio_native.spec.inputs import DeviceNode, new_build
from tests.unit.test_spec_support import apply, config_with, make_inputs

FUSE = DeviceNode("/dev/fuse", "c", 10, 229)
NVIDIA = [DeviceNode("/dev/nvidia/0", "c", 195, 0), DeviceNode("/dev/nvidia/ctl", "c", 195, 255)]
HOST = {"/dev/fuse": [FUSE], "/dev/nvidia": NVIDIA, "/dev/sda": [DeviceNode("/dev/sda", "b", 8, 0)]}


def lookup(path):
    return HOST.get(path, [])


def dev(host="/dev/fuse", container="", permissions="") -> api_pb2.Device:
    return api_pb2.Device(host_path=host, container_path=container, permissions=permissions)


def with_devices(*devs, **kw):
    return apply(devices.with_devices,
                 make_inputs(config_with(devices=list(devs)), lookup_device=lookup, **kw))


@pytest.mark.parametrize("device, path, access", [
    (dev(), "/dev/fuse", "rwm"),
    (dev(container="/dev/f"), "/dev/f", "rwm"),
    (dev(permissions="r"), "/dev/fuse", "r"),
    (dev(permissions="rw"), "/dev/fuse", "rw"),
])
def test_request_device(device, path, access):
    b = with_devices(device)
    assert b.linux["devices"] == [{"path": path, "type": "c", "major": 10, "minor": 229,
                                   "fileMode": 0o666, "uid": 0, "gid": 0}]
    assert b.resources["devices"] == [{"allow": True, "type": "c", "major": 10, "minor": 229,
                                       "access": access}]


def test_block_device_rule_type():
    b = with_devices(dev("/dev/sda", "/dev/xvda"))
    assert b.resources["devices"][0]["type"] == "b"
    assert b.linux["devices"][0]["path"] == "/dev/xvda"


def test_directory_brings_every_node_under_the_container_path():
    b = with_devices(dev("/dev/nvidia", "/dev/gpu"))
    assert [d["path"] for d in b.linux["devices"]] == ["/dev/gpu/0", "/dev/gpu/ctl"]


@pytest.mark.parametrize("device, field, reason", [
    (dev("/dev/none"), r"devices\[0\]\.host_path", "no such device"),
    (dev("dev/fuse"), r"devices\[0\]\.host_path", "absolute"),
    (dev(container="fuse"), r"devices\[0\]\.container_path", "absolute"),
    (dev(permissions="rx"), r"devices\[0\]\.permissions", "r, w and m"),
    (dev(permissions="rr"), r"devices\[0\]\.permissions", "r, w and m"),
])
def test_device_errors(device, field, reason):
    with pytest.raises(InvalidArgument, match=f"config.{field}: .*{reason}"):
        with_devices(device)


@pytest.mark.parametrize("privileged, first_rule", [
    (False, {"allow": False, "access": "rwm"}),
    (True, {"allow": True, "access": "rwm"}),
])
def test_device_cgroup_default(privileged, first_rule):
    cfg = config_with(linux__security_context__privileged=privileged)
    b = new_build()
    b.resources["devices"] = [{"allow": True, "type": "c", "major": 1, "minor": 1,
                               "access": "r"}]
    devices.with_device_cgroup(b, make_inputs(cfg))
    assert b.resources["devices"][0] == first_rule
    assert len(b.resources["devices"]) == 2


@pytest.mark.parametrize("privileged, count", [(False, 0), (True, 2)])
def test_privileged_host_devices(privileged, count):
    cfg = config_with(linux__security_context__privileged=privileged)
    b = apply(devices.with_privileged_devices, make_inputs(cfg, host_devices=NVIDIA))
    assert len(b.linux.get("devices", [])) == count


def test_request_device_replaces_host_device_at_same_path():
    cfg = config_with(linux__security_context__privileged=True,
                      devices=[dev("/dev/fuse", "/dev/nvidia/0")])
    inputs = make_inputs(cfg, host_devices=NVIDIA, lookup_device=lookup)
    b = new_build()
    devices.with_privileged_devices(b, inputs)
    devices.with_devices(b, inputs)
    paths = [d["path"] for d in b.linux["devices"]]
    assert sorted(paths) == ["/dev/nvidia/0", "/dev/nvidia/ctl"]
    assert next(d for d in b.linux["devices"] if d["path"] == "/dev/nvidia/0")["major"] == 10


def test_lookup_device_on_the_real_dev_null():
    nodes = devices.lookup_device("/dev/null")
    assert [(n.type, n.major, n.minor) for n in nodes] == [("c", 1, 3)]
    assert devices.lookup_device("/nonexistent") == []
    assert devices.lookup_device(os.devnull + "x") == []


def test_lookup_device_skips_regular_files(tmp_path):
    (tmp_path / "file").write_text("x")
    os.mkfifo(tmp_path / "fifo")
    nodes = devices.lookup_device(str(tmp_path))
    assert [(n.path, n.type) for n in nodes] == [(str(tmp_path / "fifo"), "p")]
