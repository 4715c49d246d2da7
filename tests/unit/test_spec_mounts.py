"""mounts[], root and masked/read-only paths; one varied field per case."""
from __future__ import annotations

import pytest

from crio_native._proto import api_pb2
from crio_native.errors import InvalidArgument
from crio_native.spec import mounts
from crio_native.spec.inputs import new_build
from tests.unit.test_spec_support import POD_DIR, apply, base_sandbox, config_with, make_inputs

HOST_TO_CONTAINER = api_pb2.PROPAGATION_HOST_TO_CONTAINER
BIDIRECTIONAL = api_pb2.PROPAGATION_BIDIRECTIONAL


def by_dest(build) -> dict:
    return {m["destination"]: m for m in build.spec["mounts"]}


def m(container_path="/data", host_path="/srv/data", **kw) -> api_pb2.Mount:
    return api_pb2.Mount(container_path=container_path, host_path=host_path, **kw)


def built(*mount_list, **kw):
    inputs = make_inputs(config_with(mounts=list(mount_list)), **kw)
    b = new_build()
    for option in (mounts.with_default_mounts, mounts.with_pod_files, mounts.with_request_mounts):
        option(b, inputs)
    return b


# ---- defaults ---------------------------------------------------------------

def test_default_mount_order_is_runcs():
    b = apply(mounts.with_default_mounts, make_inputs())
    assert [x["destination"] for x in b.spec["mounts"]] == [
        "/proc", "/dev", "/dev/pts", "/dev/shm", "/dev/mqueue", "/sys", "/sys/fs/cgroup"]


@pytest.mark.parametrize("privileged, mode", [(False, "ro"), (True, "rw")])
def test_sysfs_and_cgroup_mode(privileged, mode):
    cfg = config_with(linux__security_context__privileged=privileged)
    mounts_ = by_dest(apply(mounts.with_default_mounts, make_inputs(cfg)))
    assert mode in mounts_["/sys"]["options"]
    assert mode in mounts_["/sys/fs/cgroup"]["options"]


@pytest.mark.parametrize("sandbox, fstype, source", [
    ({}, "bind", POD_DIR + "/shm"),
    ({"shm_path": ""}, "tmpfs", "shm"),
    ({"shm_path": "", "ipc_mode": api_pb2.NODE}, "bind", "/dev/shm"),
])
def test_shm(sandbox, fstype, source):
    b = apply(mounts.with_default_mounts, make_inputs(sandbox=base_sandbox(**sandbox)))
    shm = by_dest(b)["/dev/shm"]
    assert (shm["type"], shm["source"]) == (fstype, source)


# ---- pod files --------------------------------------------------------------

@pytest.mark.parametrize("readonly_rootfs, mode", [(False, "rw"), (True, "ro")])
def test_pod_files(readonly_rootfs, mode):
    cfg = config_with(linux__security_context__readonly_rootfs=readonly_rootfs)
    b = apply(mounts.with_pod_files, make_inputs(cfg), new_build())
    got = by_dest(b)
    for name in ("hostname", "resolv.conf", "hosts"):
        entry = got[f"/etc/{name}"]
        assert entry["source"] == f"{POD_DIR}/{name}"
        assert mode in entry["options"]


def test_request_mount_replaces_a_pod_file():
    b = built(m("/etc/hosts", "/srv/hosts"))
    hosts = [x for x in b.spec["mounts"] if x["destination"] == "/etc/hosts"]
    assert [x["source"] for x in hosts] == ["/srv/hosts"]


def test_request_mount_replaces_default_shm():
    b = built(m("/dev/shm", "/big/shm"))
    assert [x["source"] for x in b.spec["mounts"] if x["destination"] == "/dev/shm"] == ["/big/shm"]


# ---- request mounts ---------------------------------------------------------

@pytest.mark.parametrize("kw, options, rootfs_prop", [
    ({}, ["rbind", "rprivate", "rw"], None),
    ({"readonly": True}, ["rbind", "rprivate", "ro"], None),
    ({"propagation": HOST_TO_CONTAINER}, ["rbind", "rslave", "rw"], "rslave"),
    ({"propagation": BIDIRECTIONAL}, ["rbind", "rshared", "rw"], "rshared"),
    ({"readonly": True, "recursive_read_only": True}, ["rbind", "rprivate", "ro", "rro"], None),
])
def test_request_mount_options(kw, options, rootfs_prop):
    b = built(m(**kw))
    data = by_dest(b)["/data"]
    assert data == {"destination": "/data", "type": "bind", "source": "/srv/data",
                    "options": options}
    assert b.linux.get("rootfsPropagation") == rootfs_prop


def test_shared_wins_over_slave_for_rootfs_propagation():
    b = built(m("/a", propagation=BIDIRECTIONAL), m("/b", propagation=HOST_TO_CONTAINER))
    assert b.linux["rootfsPropagation"] == "rshared"


def test_request_mounts_sorted_parent_first_and_stable():
    b = built(m("/a/b/c", "/h1"), m("/z", "/h2"), m("/a", "/h3"), m("/y", "/h4"))
    dests = [x["destination"] for x in b.spec["mounts"] if x["source"].startswith("/h")]
    assert dests == ["/z", "/a", "/y", "/a/b/c"]


def test_selinux_relabel_is_recorded():
    b = built(m(selinux_relabel=True), m("/other", "/srv/other"))
    assert b.relabel == ["/srv/data"]


@pytest.mark.parametrize("mount, kw, field, reason", [
    (m(container_path="data"), {}, r"mounts\[0\]\.container_path", "absolute"),
    (m(host_path="rel"), {}, r"mounts\[0\]\.host_path", "absolute"),
    (m(), {"host_path_exists": lambda p: False}, r"mounts\[0\]\.host_path", "no such file"),
    (m(recursive_read_only=True), {}, r"mounts\[0\]\.recursive_read_only", "readonly"),
    (m(readonly=True, recursive_read_only=True, propagation=HOST_TO_CONTAINER), {},
     r"mounts\[0\]\.recursive_read_only", "PROPAGATION_PRIVATE"),
    (m(readonly=True, recursive_read_only=True), {"supports_rro": False},
     r"mounts\[0\]\.recursive_read_only", "does not support"),
    (m(propagation=7), {}, r"mounts\[0\]\.propagation", "unknown"),
    (m(image=api_pb2.ImageSpec(image="x")), {}, r"mounts\[0\]\.image", "not supported"),
    (m(uidMappings=[api_pb2.IDMapping(length=1)]), {}, r"mounts\[0\]\.uidMappings",
     "need a pod with a user namespace"),
])
def test_request_mount_errors(mount, kw, field, reason):
    with pytest.raises(InvalidArgument, match=f"CreateContainer: config.{field}: .*{reason}"):
        built(mount, **kw)


def test_duplicate_destination_is_invalid():
    with pytest.raises(InvalidArgument, match=r"mounts\[1\]\.container_path: /data is mounted"):
        built(m("/data", "/a"), m("/data/", "/b"))


# ---- image volumes ----------------------------------------------------------

def test_image_volumes_get_private_dirs():
    inputs = make_inputs(image={"Volumes": {"/var/lib/db": {}, "/cache": {}}},
                         volume_dir="/var/lib/crio-native/volumes/c1")
    b = apply(mounts.with_image_volumes, inputs)
    got = by_dest(b)
    assert set(got) == {"/var/lib/db", "/cache"}
    assert b.volume_dirs == [got["/cache"]["source"], got["/var/lib/db"]["source"]]
    assert all(s.startswith("/var/lib/crio-native/volumes/c1/") for s in b.volume_dirs)


@pytest.mark.parametrize("kw", [{"volume_dir": ""}, {"image": {"Volumes": None}}])
def test_image_volumes_skipped(kw):
    kw.setdefault("image", {"Volumes": {"/v": {}}})
    kw.setdefault("volume_dir", "/vols")
    assert apply(mounts.with_image_volumes, make_inputs(**kw)).spec["mounts"] == []


def test_image_volume_under_a_request_mount_is_not_added():
    inputs = make_inputs(config_with(mounts=[m("/v")]), image={"Volumes": {"/v": {}}},
                         volume_dir="/vols")
    b = new_build()
    mounts.with_request_mounts(b, inputs)
    mounts.with_image_volumes(b, inputs)
    assert [x["source"] for x in b.spec["mounts"]] == ["/srv/data"]
    assert b.volume_dirs == []


# ---- root, masked and read-only paths ---------------------------------------

@pytest.mark.parametrize("readonly", [False, True])
def test_root(readonly):
    cfg = config_with(linux__security_context__readonly_rootfs=readonly)
    b = apply(mounts.with_root, make_inputs(cfg, rootfs="/var/lib/x/rootfs"))
    assert b.spec["root"] == {"path": "/var/lib/x/rootfs", "readonly": readonly}


@pytest.mark.parametrize("fields, masked, readonly", [
    ({}, mounts.DEFAULT_MASKED_PATHS, mounts.DEFAULT_READONLY_PATHS),
    ({"linux__security_context__masked_paths": ["/proc/x"]}, ["/proc/x"],
     mounts.DEFAULT_READONLY_PATHS),
    ({"linux__security_context__readonly_paths": ["/proc/y"]}, mounts.DEFAULT_MASKED_PATHS,
     ["/proc/y"]),
    ({"linux__security_context__privileged": True}, None, None),
])
def test_masked_and_readonly_paths(fields, masked, readonly):
    b = apply(mounts.with_masked_paths, make_inputs(config_with(**fields)))
    assert b.linux.get("maskedPaths") == masked
    assert b.linux.get("readonlyPaths") == readonly


def test_masked_path_must_be_absolute():
    cfg = config_with(linux__security_context__masked_paths=["/ok", "proc/kcore"])
    with pytest.raises(InvalidArgument, match=r"security_context\.masked_paths\[1\]"):
        apply(mounts.with_masked_paths, make_inputs(cfg))


def test_request_mount_on_etc_goes_before_the_pod_files():
    b = built(m("/etc", "/srv/etc"))
    dests = [x["destination"] for x in b.spec["mounts"]]
    assert dests[7:] == ["/etc", "/etc/hostname", "/etc/resolv.conf", "/etc/hosts"]


def test_image_volume_below_a_request_mount_comes_after_it():
    inputs = make_inputs(config_with(mounts=[m("/var/lib/db/x", "/h")]),
                         image={"Volumes": {"/var/lib/db": {}}}, volume_dir="/vols")
    b = new_build()
    mounts.with_request_mounts(b, inputs)
    mounts.with_image_volumes(b, inputs)
    assert [x["destination"] for x in b.spec["mounts"]] == ["/var/lib/db", "/var/lib/db/x"]
