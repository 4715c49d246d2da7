"""process.user: image USER forms, run_as_* overrides, supplemental groups
under Merge and Strict, and reading passwd/group safely from a rootfs."""
from __future__ import annotations

import os

import pytest

from crio_native._proto import api_pb2
from crio_native.errors import InvalidArgument
from crio_native.spec import user
from tests.unit.test_spec_support import apply, config_with, make_inputs

PASSWD = """root:x:0:0:root:/root:/bin/sh
# a comment
daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin
app:x:1000:1000:App:/home/app:/bin/sh
broken line
nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin
"""
GROUP = """root:x:0:
daemon:x:1:
wheel:x:10:app,other
app:x:1000:
audio:x:29:app
staff:x:50:
"""


@pytest.fixture
def rootfs(tmp_path):
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "passwd").write_text(PASSWD)
    (tmp_path / "etc" / "group").write_text(GROUP)
    return str(tmp_path)


def test_parse_passwd_skips_malformed_lines():
    entries = user.parse_passwd(PASSWD)
    assert [e.name for e in entries] == ["root", "daemon", "app", "nobody"]
    assert entries[2] == user.PasswdEntry("app", 1000, 1000, "/home/app")


def test_parse_group_members():
    groups = {g.name: g for g in user.parse_group(GROUP)}
    assert groups["wheel"].members == ("app", "other")
    assert groups["staff"].members == ()


def _user(b):
    return b.process["user"]


@pytest.mark.parametrize("image_user, uid, gid", [
    ("", 0, 0),
    ("app", 1000, 1000),
    ("1000", 1000, 1000),
    ("4242", 4242, 0),                 # a uid the image does not list
    ("app:staff", 1000, 50),
    ("app:77", 1000, 77),
    ("1000:staff", 1000, 50),
    ("5:6", 5, 6),
])
def test_image_user_forms(rootfs, image_user, uid, gid):
    b = apply(user.with_user, make_inputs(image={"User": image_user}, rootfs=rootfs))
    assert (_user(b)["uid"], _user(b)["gid"]) == (uid, gid)


@pytest.mark.parametrize("image_user, what", [("ghost", "no user 'ghost'"),
                                              ("app:ghosts", "no group 'ghosts'")])
def test_image_user_unknown(rootfs, image_user, what):
    with pytest.raises(InvalidArgument, match=f"image config User .*{what}"):
        apply(user.with_user, make_inputs(image={"User": image_user}, rootfs=rootfs))


@pytest.mark.parametrize("fields, uid, gid", [
    ({"linux__security_context__run_as_user": api_pb2.Int64Value(value=1000)}, 1000, 1000),
    ({"linux__security_context__run_as_user": api_pb2.Int64Value(value=0)}, 0, 0),
    ({"linux__security_context__run_as_user": api_pb2.Int64Value(value=3000)}, 3000, 0),
    ({"linux__security_context__run_as_username": "daemon"}, 1, 1),
])
def test_run_as_overrides_image_user(rootfs, fields, uid, gid):
    b = apply(user.with_user, make_inputs(config_with(**fields), image={"User": "nobody"},
                                          rootfs=rootfs))
    assert (_user(b)["uid"], _user(b)["gid"]) == (uid, gid)


def test_run_as_group_overrides_gid(rootfs):
    cfg = config_with(linux__security_context__run_as_user=api_pb2.Int64Value(value=1000),
                      linux__security_context__run_as_group=api_pb2.Int64Value(value=3000))
    assert _user(apply(user.with_user, make_inputs(cfg, rootfs=rootfs)))["gid"] == 3000


def test_run_as_group_alone_is_invalid(rootfs):
    cfg = config_with(linux__security_context__run_as_group=api_pb2.Int64Value(value=5))
    with pytest.raises(InvalidArgument, match=r"security_context\.run_as_group: needs"):
        apply(user.with_user, make_inputs(cfg, rootfs=rootfs))


@pytest.mark.parametrize("field, value", [
    ("linux__security_context__run_as_user", api_pb2.Int64Value(value=-1)),
    ("linux__security_context__run_as_username", "ghost"),
])
def test_run_as_bad(rootfs, field, value):
    with pytest.raises(InvalidArgument, match=field.split("__")[-1]):
        apply(user.with_user, make_inputs(config_with(**{field: value}), rootfs=rootfs))


@pytest.mark.parametrize("policy, extra, want", [
    (api_pb2.Merge, [], [1000, 10, 29]),
    (api_pb2.Merge, [5000, 10], [1000, 10, 29, 5000]),
    (api_pb2.Strict, [], [1000]),
    (api_pb2.Strict, [5000], [1000, 5000]),
])
def test_supplemental_groups(rootfs, policy, extra, want):
    cfg = config_with(linux__security_context__supplemental_groups_policy=policy,
                      linux__security_context__supplemental_groups=extra)
    b = apply(user.with_user, make_inputs(cfg, image={"User": "app"}, rootfs=rootfs))
    assert _user(b)["additionalGids"] == want


def test_home_from_passwd_unless_image_sets_it(rootfs):
    b = apply(user.with_user, make_inputs(image={"User": "app"}, rootfs=rootfs))
    assert "HOME=/home/app" in b.process["env"]
    b.process["env"] = ["HOME=/elsewhere"]
    user.with_user(b, make_inputs(image={"User": "app"}, rootfs=rootfs))
    assert b.process["env"] == ["HOME=/elsewhere"]


def test_no_rootfs_files_means_root(tmp_path):
    b = apply(user.with_user, make_inputs(image={"User": ""}, rootfs=str(tmp_path)))
    assert _user(b) == {"uid": 0, "gid": 0, "additionalGids": [0]}


def test_absolute_symlink_resolves_inside_the_rootfs(tmp_path, rootfs):
    root = tmp_path / "img"
    (root / "etc").mkdir(parents=True)
    (root / "real").mkdir()
    (root / "real" / "passwd").write_text("svc:x:77:78::/srv:/bin/sh\n")
    os.symlink("/real/passwd", root / "etc" / "passwd")
    assert user.read_in_rootfs(str(root), "/etc/passwd").startswith("svc:")


def test_symlink_cannot_escape_to_the_host(tmp_path):
    root = tmp_path / "img"
    (root / "etc").mkdir(parents=True)
    secret = tmp_path / "secret"
    secret.write_text("host data")
    os.symlink("../../secret", root / "etc" / "passwd")
    assert user.read_in_rootfs(str(root), "/etc/passwd") == ""


def test_symlink_loop_reads_nothing(tmp_path):
    (tmp_path / "etc").mkdir()
    os.symlink("passwd", tmp_path / "etc" / "passwd")
    assert user.read_in_rootfs(str(tmp_path), "/etc/passwd") == ""
