"""User namespaces (KEP-127) without root: every refusal of a userns request
(RunPodSandbox and CreateContainer), the spec a container in such a pod
gets (a user join, the pod's maps on linux and on every bind), the built-in
runtime's plan for it (no maps written, idmapped binds, tmpfs/devpts and
device owners translated), the pod's pins, the rootfs idmap and features."""
from __future__ import annotations

import copy
import re
from pathlib import Path

import pytest

from crio_native._proto import api_pb2
from crio_native.errors import InvalidArgument
from crio_native.runtime.builtin import records as r
from crio_native.runtime.builtin.records import Rec
from crio_native.runtime.oci.handler import features_from_json
from crio_native.sandbox import setup, validate
from crio_native.spec import mounts, namespaces
from crio_native.storage.rootfs import RootfsIdmap
from tests.unit.test_plan_build import build, of
from tests.unit.test_plan_build import bundle  # noqa: F401  (fixture)
from tests.unit.test_spec_support import apply, base_sandbox, config_with, make_inputs

POD, CONTAINER, NODE, TARGET = api_pb2.POD, api_pb2.CONTAINER, api_pb2.NODE, api_pb2.TARGET
NS = "linux__security_context__namespace_options"
FIELD = r"config\.linux\.security_context\.namespace_options\.userns_options"
BASE = 65536 * 3
NATIVE = Path(__file__).resolve().parents[2] / "src" / "_native"


def maps(*ms):
    return [api_pb2.IDMapping(container_id=c, host_id=h, length=n) for c, h, n in ms]


def userns(mode=POD, uids=((0, BASE, 65536),), gids=((0, BASE, 65536),)):
    return api_pb2.UserNamespace(mode=mode, uids=maps(*uids), gids=maps(*gids))


# ---- RunPodSandbox: what the kubelet may send, and what it may not ------------

def test_kubelets_pod_mode_gives_the_maps():
    assert validate.check_userns(userns()) == ([(0, BASE, 65536)], [(0, BASE, 65536)])


def test_node_mode_without_mappings_is_the_host():
    assert validate.check_userns(api_pb2.UserNamespace(mode=NODE)) is None


@pytest.mark.parametrize("request_, field, reason", [
    (userns(uids=((0, BASE, 100), (100, BASE + 100, 100))), "uids", "exactly one mapping, got 2"),
    (userns(gids=((0, BASE, 100), (100, BASE + 100, 100))), "gids", "exactly one mapping, got 2"),
    (userns(uids=()), "uids", "exactly one mapping, got 0"),
    (userns(gids=()), "gids", "exactly one mapping, got 0"),
    (userns(uids=((1, BASE, 65536),)), r"uids\[0\]\.container_id", "container id 0"),
    (userns(gids=((1000, BASE, 65536),)), r"gids\[0\]\.container_id", "container id 0"),
    (userns(uids=((0, BASE, 0),)), r"uids\[0\]\.length", "at least 1"),
    (userns(uids=((0, 2**32 - 10, 65536),)), r"uids\[0\]\.length", "past 2\\^32"),
    (userns(mode=CONTAINER), "mode", "mode CONTAINER is not supported"),
    (userns(mode=TARGET), "mode", "mode TARGET is not supported"),
    (userns(mode=NODE), "uids", "only for mode POD"),
    (userns(mode=NODE, uids=()), "gids", "only for mode POD"),
])
def test_refusals_name_the_field(request_, field, reason):
    with pytest.raises(InvalidArgument, match=rf"^RunPodSandbox: {FIELD}\.{field}: .*{reason}"):
        validate.check_userns(request_)


def test_the_map_text_is_proc_uid_maps_format():
    assert validate.id_map_text([[0, BASE, 65536]]) == f"0 {BASE} 65536\n"


def test_a_pod_with_a_user_namespace_pins_it_with_the_others():
    record = base_sandbox(userns_uids=[[0, BASE, 65536]], userns_gids=[[0, BASE, 65536]])
    pins = setup.planned_pins(record, Path("/run/x/ns"))
    assert pins["user"] == "/run/x/ns/user/p1"
    assert set(pins) == {"net", "uts", "ipc", "user"}
    assert "user" not in setup.planned_pins(base_sandbox(), Path("/run/x/ns"))


# ---- CreateContainer: the spec -----------------------------------------------

def userns_sandbox(**kw):
    pins = dict(base_sandbox().pins, user="/pins/user")
    return base_sandbox(pins=pins, userns_uids=[[0, BASE, 65536]],
                        userns_gids=[[0, BASE + 65536, 65536]], **kw)


def test_every_container_joins_the_pods_user_namespace_even_unasked():
    b = apply(namespaces.with_namespaces, make_inputs(sandbox=userns_sandbox()))
    assert {"type": "user", "path": "/pins/user"} in b.linux["namespaces"]
    assert b.linux["gidMappings"] == [{"containerID": 0, "hostID": BASE + 65536, "size": 65536}]


@pytest.mark.parametrize("request_, sandbox, field, reason", [
    (userns(), None, "mode", "has no user namespace"),
    (api_pb2.UserNamespace(mode=NODE), "userns", "mode", "mode NODE in a pod with its own"),
    (userns(gids=((0, BASE, 65536),)), "userns", "gids", "differ from the pod's"),
    (userns(mode=CONTAINER), "userns", "mode", "CONTAINER is not supported"),
    (userns(uids=((0, BASE, 1), (1, BASE + 1, 1))), "userns", "uids", "exactly one"),
])
def test_container_refusals_name_the_field(request_, sandbox, field, reason):
    cfg = config_with(**{f"{NS}__userns_options": request_})
    inputs = make_inputs(cfg, sandbox=userns_sandbox() if sandbox else None)
    with pytest.raises(InvalidArgument,
                       match=rf"^CreateContainer: {FIELD}\.{field}: .*{reason}"):
        apply(namespaces.with_namespaces, inputs)


def test_binds_carry_the_pods_maps_and_kernel_mounts_do_not():
    sandbox = userns_sandbox()
    inputs = make_inputs(sandbox=sandbox)
    b = apply(mounts.with_default_mounts, inputs)
    b = apply(mounts.with_pod_files, inputs, b)
    b.spec["mounts"].append({"destination": "/data", "type": "bind", "source": "/v",
                             "options": ["rbind", "rw"]})
    b = apply(namespaces.with_namespaces, inputs, b)
    binds = [m for m in b.spec["mounts"] if "bind" in m["type"] or "rbind" in m["options"]
             or "bind" in m["options"]]
    assert binds and all(m["uidMappings"] == [{"containerID": 0, "hostID": BASE,
                                               "size": 65536}] for m in binds)
    assert all("uidMappings" not in m for m in b.spec["mounts"] if m not in binds)
    assert "/etc/hosts" in {m["destination"] for m in binds}


def request_mount(**kw):
    return api_pb2.Mount(container_path="/data", host_path="/v", **kw)


def test_a_request_mounts_own_maps_must_be_the_pods():
    inputs = make_inputs(sandbox=userns_sandbox(), host_path_exists=lambda p: True)
    same = request_mount(uidMappings=maps((0, BASE, 65536)),
                         gidMappings=maps((0, BASE + 65536, 65536)))
    assert mounts.request_mount(same, 0, inputs)["destination"] == "/data"
    other = request_mount(uidMappings=maps((0, 5 * 65536, 65536)))
    with pytest.raises(InvalidArgument, match=r"mounts\[0\]\.uidMappings: .*only those"):
        mounts.request_mount(other, 0, inputs)


# ---- the built-in runtime's plan -----------------------------------------------

def joined(spec, bundle_dir):
    spec["linux"]["namespaces"].append({"type": "user", "path": "/pins/user"})
    spec["linux"]["uidMappings"] = [{"containerID": 0, "hostID": BASE, "size": 65536}]
    spec["linux"]["gidMappings"] = [{"containerID": 0, "hostID": BASE + 7, "size": 65536}]


def test_a_joined_user_namespace_writes_no_maps_and_is_joined(bundle):
    recs = build(bundle, lambda s: joined(s, bundle))
    assert of(recs, Rec.ID_MAP) == []
    assert (0x10000000, "/pins/user") in of(recs, Rec.NS_JOIN)


def test_binds_with_maps_are_idmapped_mounts(bundle):
    def edit(spec):
        joined(spec, bundle)
        maps_ = {"uidMappings": spec["linux"]["uidMappings"],
                 "gidMappings": spec["linux"]["gidMappings"]}
        spec["mounts"] = [{"destination": "/a", "type": "bind", "source": "hostdir",
                           "options": ["rbind"], **maps_},
                          {"destination": "/b", "type": "bind", "source": "hostdir",
                           "options": ["rbind"]}]
    kinds = [f[2] for f in of(build(bundle, edit), Rec.MOUNT) if f[4] in ("/a", "/b")]
    assert kinds == [r.MOUNT_BIND | r.MOUNT_IDMAP, r.MOUNT_BIND]


@pytest.mark.parametrize("mount, reason", [
    ({"destination": "/a", "type": "tmpfs", "source": "tmpfs",
      "uidMappings": [{"containerID": 0, "hostID": 1, "size": 1}]}, "must be binds"),
    ({"destination": "/a", "type": "bind", "source": "hostdir", "options": ["rbind"],
      "uidMappings": [{"containerID": 0, "hostID": 1, "size": 1}]}, "differ from linux"),
])
def test_idmapped_mount_refusals(bundle, mount, reason):
    def edit(spec):
        joined(spec, bundle)
        spec["mounts"] = [mount]
    with pytest.raises(InvalidArgument, match=rf"mounts\[0\]\.uidMappings: .*{reason}"):
        build(bundle, edit)


def test_idmapped_mounts_need_a_joined_user_namespace(bundle):
    def edit(spec):
        spec["linux"]["namespaces"].append({"type": "user"})
        spec["linux"]["uidMappings"] = [{"containerID": 0, "hostID": BASE, "size": 10}]
        spec["linux"]["gidMappings"] = [{"containerID": 0, "hostID": BASE, "size": 10}]
        spec["mounts"] = [{"destination": "/a", "type": "bind", "source": "hostdir",
                           "options": ["rbind"], "uidMappings": spec["linux"]["uidMappings"]}]
    with pytest.raises(InvalidArgument, match=r"mounts\[0\]\.uidMappings: .*joined user"):
        build(bundle, edit)


def test_tmpfs_devpts_and_devices_are_owned_as_the_container_sees_them(bundle):
    def edit(spec):
        joined(spec, bundle)
        spec["mounts"] = [
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["mode=755"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
             "options": ["newinstance", "gid=5", "mode=0620"]}]
    recs = build(bundle, edit)
    data = {f[4]: f[6] for f in of(recs, Rec.MOUNT)}
    assert data["/dev"] == f"mode=755,uid={BASE},gid={BASE + 7}"
    assert data["/dev/pts"] == f"newinstance,gid={BASE + 7 + 5},mode=0620"
    devices = of(recs, Rec.DEVICE)
    assert devices and all((uid, gid) == (BASE, BASE + 7) for _m, _a, _b, uid, gid, _p in devices)


def test_without_a_user_namespace_nothing_is_translated(bundle):
    def edit(spec):
        spec["mounts"] = [{"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
                           "options": ["mode=755"]}]
    assert [f[6] for f in of(build(bundle, edit), Rec.MOUNT)] == ["mode=755"]


def test_the_idmap_mount_kind_matches_plan_h():
    m = re.search(r"\bCRN_MOUNT_IDMAP\s*=\s*(0x[0-9a-fA-F]+)", (NATIVE / "plan.h").read_text())
    assert m and int(m.group(1), 0) == r.MOUNT_IDMAP


# ---- rootfs and features ---------------------------------------------------------

def test_rootfs_idmap_is_the_host_root_of_the_maps():
    idmap = RootfsIdmap.of({"user": "/pins/user"}, [[0, BASE, 65536]], [[0, BASE + 1, 65536]])
    assert idmap == RootfsIdmap("/pins/user", BASE, BASE + 1)
    assert RootfsIdmap.of({}, [], []) is None


def test_oci_runtimes_advertise_user_namespaces_only_with_idmapped_mounts():
    runc_115 = {"ociVersionMax": "1.0.2-dev", "linux": {"namespaces": ["user", "mount"]}}
    assert features_from_json(runc_115, True).user_namespaces is False
    runc_12 = {"linux": {"namespaces": ["user"], "mountExtensions": {"idmap": {"enabled": True}}}}
    assert features_from_json(runc_12, True).user_namespaces is True


def test_builtin_features_declare_idmap_as_the_handler_does(monkeypatch):
    from crio_native.runtime.builtin import features

    for supported in (True, False):
        monkeypatch.setattr(features, "user_namespaces_supported", lambda s=supported: s)
        doc = features.features()
        assert doc["linux"]["mountExtensions"]["idmap"]["enabled"] is supported


def test_copy_of_base_is_not_mutated(bundle):
    from tests.unit.test_plan_build import BASE as PLAN_BASE
    before = copy.deepcopy(PLAN_BASE)
    build(bundle, lambda s: joined(s, bundle))
    assert PLAN_BASE == before
