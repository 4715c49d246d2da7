"""SELinux labels and spec annotations."""
from __future__ import annotations

import pytest

from crio_native._proto import api_pb2
from crio_native.errors import InvalidArgument
from crio_native.spec import annotations, selinux
from tests.unit.test_spec_support import apply, config_with, make_inputs

SEL = "linux__security_context__selinux_options"


def labels(cfg=None, **kw):
    kw.setdefault("selinux_enabled", True)
    b = apply(selinux.with_selinux, make_inputs(cfg, **kw))
    return b.process.get("selinuxLabel"), b.linux.get("mountLabel")


@pytest.mark.parametrize("options, kw, process, mount", [
    ({}, {}, "system_u:system_r:container_t:s0", "system_u:object_r:container_file_t:s0"),
    ({}, {"selinux_level": "s0:c1,c2"}, "system_u:system_r:container_t:s0:c1,c2",
     "system_u:object_r:container_file_t:s0:c1,c2"),
    ({"type": "my_t"}, {"selinux_level": "s0:c1,c2"}, "system_u:system_r:my_t:s0:c1,c2",
     "system_u:object_r:container_file_t:s0:c1,c2"),
    ({"level": "s0:c5,c6"}, {"selinux_level": "s0:c1,c2"},
     "system_u:system_r:container_t:s0:c5,c6", "system_u:object_r:container_file_t:s0:c5,c6"),
    ({"user": "u", "role": "r"}, {}, "u:r:container_t:s0",
     "system_u:object_r:container_file_t:s0"),
])
def test_labels(options, kw, process, mount):
    cfg = config_with(**{SEL: api_pb2.SELinuxOption(**options)})
    assert labels(cfg, **kw) == (process, mount)


def test_privileged_runs_as_spc_t():
    cfg = config_with(linux__security_context__privileged=True)
    assert labels(cfg)[0] == "system_u:system_r:spc_t:s0"


def test_disabled_selinux_leaves_no_labels():
    cfg = config_with(**{SEL: api_pb2.SELinuxOption(type="my_t")})
    assert labels(cfg, selinux_enabled=False) == (None, None)


@pytest.mark.parametrize("options, field", [
    ({"type": "bad type"}, "type"), ({"user": "a:b"}, "user"), ({"level": "c1"}, "level"),
])
def test_bad_selinux_options(options, field):
    cfg = config_with(**{SEL: api_pb2.SELinuxOption(**options)})
    with pytest.raises(InvalidArgument, match=rf"selinux_options\.{field}"):
        labels(cfg)


# ---- annotations ------------------------------------------------------------

def test_containerd_annotations():
    b = apply(annotations.with_annotations, make_inputs(image_name="busybox:latest"))
    assert b.spec["annotations"] == {
        "io.kubernetes.cri.container-type": "container",
        "io.kubernetes.cri.container-name": "app",
        "io.kubernetes.cri.sandbox-id": "p1",
        "io.kubernetes.cri.sandbox-name": "web",
        "io.kubernetes.cri.sandbox-namespace": "default",
        "io.kubernetes.cri.sandbox-uid": "uid-1",
        "io.kubernetes.cri.image-name": "busybox:latest",
    }


def test_request_annotations_pass_but_cannot_forge_ours():
    cfg = config_with(annotations={"team": "a", "io.kubernetes.cri.container-type": "sandbox"})
    got = apply(annotations.with_annotations, make_inputs(cfg)).spec["annotations"]
    assert got["team"] == "a"
    assert got["io.kubernetes.cri.container-type"] == "container"
    assert got["io.kubernetes.cri.image-name"] == "docker.io/library/busybox:latest"


@pytest.mark.parametrize("level, ok", [
    ("s0", True), ("s0:c1,c2", True), ("s0-s0:c0.c1023", True),
    ("s0\n", False), ('s0",nodev', False), ("c1,c2", False), ("", False),
])
def test_level_problem(level, ok):
    assert (selinux.level_problem(level) is None) == ok


def test_identifiers_with_a_trailing_newline_are_refused():
    opts = api_pb2.SELinuxOption(type="spc_t\n")
    with pytest.raises(InvalidArgument, match="selinux_options.type"):
        selinux.container_mount_label(opts, "s0:c1,c2")


def test_container_mount_label_prefers_the_container_level():
    assert selinux.file_label("s0:c1,c2") == "system_u:object_r:container_file_t:s0:c1,c2"
    assert selinux.file_label("") == "system_u:object_r:container_file_t:s0"
    assert (selinux.container_mount_label(api_pb2.SELinuxOption(), "s0:c1,c2")
            == "system_u:object_r:container_file_t:s0:c1,c2")
    assert (selinux.container_mount_label(api_pb2.SELinuxOption(level="s0:c7,c8"), "s0:c1,c2")
            == "system_u:object_r:container_file_t:s0:c7,c8")
    with pytest.raises(InvalidArgument, match="selinux_options.level"):
        selinux.container_mount_label(api_pb2.SELinuxOption(level='s0",nodev'), "s0:c1,c2")
