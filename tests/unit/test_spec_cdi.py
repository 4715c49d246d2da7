"""CDI: spec files in temp directories resolved into nodes, mounts, env,
hooks and groups; unknown devices are InvalidArgument."""
from __future__ import annotations

import json

import pytest

from crio_native._proto import api_pb2
from crio_native.errors import InvalidArgument
from crio_native.spec import cdi
from crio_native.spec.inputs import DeviceNode, new_build
from tests.unit.test_spec_support import config_with, make_inputs

VENDOR = {
    "cdiVersion": "0.6.0",
    "kind": "example.com/gpu",
    "containerEdits": {"env": ["GPU_VENDOR=example"]},
    "devices": [
        {"name": "gpu0", "containerEdits": {
            "deviceNodes": [{"path": "/dev/gpu0", "type": "c", "major": 240, "minor": 0,
                             "permissions": "rw"}],
            "mounts": [{"hostPath": "/usr/lib/gpu", "containerPath": "/usr/lib/gpu",
                        "options": ["ro", "nosuid", "bind"]}],
            "env": ["GPU=0"],
            "hooks": [{"hookName": "createContainer", "path": "/usr/bin/gpu-hook",
                       "args": ["gpu-hook", "setup"]}],
            "additionalGids": [44]}},
        {"name": "gpu1", "containerEdits": {
            "deviceNodes": [{"path": "/dev/gpu1", "hostPath": "/dev/host-gpu1"}]}},
    ],
}


@pytest.fixture
def cdi_dirs(tmp_path):
    etc, run = tmp_path / "etc", tmp_path / "run"
    etc.mkdir()
    run.mkdir()
    (etc / "example.json").write_text(json.dumps(VENDOR))
    return [str(etc), str(run)]


def lookup(path):
    return {"/dev/host-gpu1": [DeviceNode("/dev/host-gpu1", "c", 240, 1, 0o660, 0, 44)]}.get(
        path, [])


def run_cdi(cdi_dirs, names=(), annotations=None, build=None):
    cfg = config_with(CDI_devices=[api_pb2.CDIDevice(name=n) for n in names],
                      annotations=annotations or {})
    b = build or new_build()
    b.process["env"] = ["PATH=/bin"]
    b.process["user"] = {"uid": 0, "gid": 0, "additionalGids": [0]}
    cdi.with_cdi_devices(b, make_inputs(cfg, cdi_dirs=cdi_dirs, lookup_device=lookup))
    return b


def test_device_edits_applied(cdi_dirs):
    b = run_cdi(cdi_dirs, ["example.com/gpu=gpu0"])
    assert b.linux["devices"][0]["path"] == "/dev/gpu0"
    assert b.resources["devices"] == [{"allow": True, "type": "c", "major": 240, "minor": 0,
                                       "access": "rw"}]
    assert b.spec["mounts"] == [{"destination": "/usr/lib/gpu", "type": "bind",
                                 "source": "/usr/lib/gpu", "options": ["ro", "nosuid", "bind"]}]
    assert b.process["env"] == ["PATH=/bin", "GPU_VENDOR=example", "GPU=0"]
    assert b.spec["hooks"] == {"createContainer": [{"path": "/usr/bin/gpu-hook",
                                                    "args": ["gpu-hook", "setup"]}]}
    assert b.process["user"]["additionalGids"] == [0, 44]


def test_node_without_numbers_is_looked_up_on_the_host(cdi_dirs):
    b = run_cdi(cdi_dirs, ["example.com/gpu=gpu1"])
    node = b.linux["devices"][0]
    assert (node["path"], node["major"], node["minor"], node["gid"]) == ("/dev/gpu1", 240, 1, 44)


def test_annotations_request_devices(cdi_dirs):
    b = run_cdi(cdi_dirs, annotations={"cdi.k8s.io/plugin": "example.com/gpu=gpu0,"
                                                            "example.com/gpu=gpu1"})
    assert [d["path"] for d in b.linux["devices"]] == ["/dev/gpu0", "/dev/gpu1"]


def test_spec_edits_applied_once_and_names_deduplicated(cdi_dirs):
    b = run_cdi(cdi_dirs, ["example.com/gpu=gpu0", "example.com/gpu=gpu1"],
                annotations={"cdi.k8s.io/x": "example.com/gpu=gpu0"})
    assert b.process["env"].count("GPU_VENDOR=example") == 1
    assert len(b.linux["devices"]) == 2


def test_later_directory_wins(cdi_dirs, tmp_path):
    override = json.loads(json.dumps(VENDOR))
    override["devices"] = [{"name": "gpu0", "containerEdits": {"env": ["FROM=run"]}}]
    override["containerEdits"] = {}
    (tmp_path / "run" / "override.json").write_text(json.dumps(override))
    b = run_cdi(cdi_dirs, ["example.com/gpu=gpu0"])
    assert b.process["env"] == ["PATH=/bin", "FROM=run"]


def test_yaml_file_with_json_content_is_read(tmp_path):
    (tmp_path / "v.yaml").write_text(json.dumps(VENDOR))
    b = run_cdi([str(tmp_path)], ["example.com/gpu=gpu1"])
    assert b.linux["devices"][0]["path"] == "/dev/gpu1"


def test_unparsable_and_kindless_files_are_skipped(tmp_path):
    (tmp_path / "a.yaml").write_text("cdiVersion: 0.6.0\nkind: x.com/y\n")
    (tmp_path / "b.json").write_text(json.dumps({"devices": [{"name": "d"}]}))
    assert cdi.CdiRegistry.load([str(tmp_path), str(tmp_path / "missing")]).devices == {}


@pytest.mark.parametrize("names, annotations, field, reason", [
    (["example.com/gpu=gpu9"], None, r"CDI_devices\[0\]\.name", "unknown CDI device"),
    (["gpu0"], None, r"CDI_devices\[0\]\.name", "not a CDI device name"),
    ([], {"cdi.k8s.io/p": "other.com/x=y"}, r"annotations\['cdi.k8s.io/p'\]", "unknown"),
])
def test_unknown_devices(cdi_dirs, names, annotations, field, reason):
    with pytest.raises(InvalidArgument, match=f"config.{field}: .*{reason}"):
        run_cdi(cdi_dirs, names, annotations)


@pytest.mark.parametrize("edits, reason", [
    ({"hooks": [{"hookName": "sometime", "path": "/x"}]}, "unknown hookName"),
    ({"hooks": [{"hookName": "prestart", "path": "x"}]}, "absolute path"),
    ({"mounts": [{"hostPath": "/a", "containerPath": "b"}]}, "absolute containerPath"),
    ({"deviceNodes": [{"path": "/dev/nothere"}]}, "no such device"),
    ({"deviceNodes": [{"path": "/dev/z", "major": 1, "permissions": "x"}]}, "r, w and m"),
])
def test_bad_edits(tmp_path, edits, reason):
    (tmp_path / "bad.json").write_text(json.dumps(
        {"kind": "bad.com/x", "devices": [{"name": "d", "containerEdits": edits}]}))
    with pytest.raises(InvalidArgument, match=reason):
        run_cdi([str(tmp_path)], ["bad.com/x=d"])


def test_no_requests_reads_nothing():
    b = new_build()
    cdi.with_cdi_devices(b, make_inputs(cdi_dirs=["/nonexistent"]))
    assert "devices" not in b.linux
