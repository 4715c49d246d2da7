"""linux/mountinfo: the one parser of /proc/self/mountinfo, on lines in the
kernel's format (optional fields, escaped paths) and on this process's own
table."""
from __future__ import annotations

import os

from hypothesis import given
from hypothesis import strategies as st

from crio_native.linux import mountinfo

TABLE = """\
22 1 0:21 / / rw,relatime shared:1 - ext4 /dev/vda rw
25 22 0:23 / /run rw,nosuid,nodev shared:5 - tmpfs tmpfs rw,size=100k,mode=755
30 22 0:26 / /sys/fs/cgroup/memory rw,nosuid master:9 - cgroup cgroup rw,memory
31 22 0:27 /sub /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw,nsdelegate
40 25 0:40 / /run/crio-native/pods/abc/shm rw - tmpfs shm rw,size=64k
41 25 0:41 / /run/crio-native/pods/abc/shm rw - tmpfs shm rw,size=64k
42 25 0:42 / /run/crio-native/pods/abc/data\\040dir rw - tmpfs my\\040src rw
43 25 0:43 / /run/crio-native/pods/abcdef rw - tmpfs t rw
44 22 0:44 / /dev/shm rw - ext4 /dev/vdb rw
45 22 0:45 / /dev/shm rw shared:7 master:8 - tmpfs tmpfs rw
"""


def test_fields_of_a_line_with_optional_fields():
    entry = mountinfo.parse_line(TABLE.splitlines()[2])
    assert entry == mountinfo.MountEntry(
        mount_id=30, parent_id=22, root="/", mount_point="/sys/fs/cgroup/memory",
        options="rw,nosuid", fstype="cgroup", source="cgroup", super_options="rw,memory")


def test_no_optional_fields_and_a_root_below_the_filesystem_top():
    entry = mountinfo.parse_line(TABLE.splitlines()[3])
    assert entry is not None
    assert (entry.root, entry.mount_point, entry.fstype) == ("/sub", "/sys/fs/cgroup/unified",
                                                             "cgroup2")


def test_escaped_paths_are_decoded():
    entry = mountinfo.parse_line(TABLE.splitlines()[6])
    assert entry is not None
    assert entry.mount_point == "/run/crio-native/pods/abc/data dir"
    assert entry.source == "my src"


def test_lines_that_are_not_records_are_left_out():
    assert mountinfo.parse_line("") is None
    assert mountinfo.parse_line("22 1 0:21 / / rw shared:1 ext4 /dev/vda rw") is None
    assert mountinfo.parse_line("x 1 0:21 / / rw - ext4 /dev/vda rw") is None
    assert len(mountinfo.parse(TABLE + "garbage\n")) == 10


def test_under_lists_each_point_once_deepest_first_and_not_siblings():
    entries = mountinfo.parse(TABLE)
    got = mountinfo.under(entries, "/run/crio-native/pods/abc")
    assert got[0] in ("/run/crio-native/pods/abc/data dir", "/run/crio-native/pods/abc/shm")
    assert sorted(got) == ["/run/crio-native/pods/abc/data dir",
                           "/run/crio-native/pods/abc/shm"]
    assert mountinfo.under(entries, "/run/crio-native/pods/abc/") == got
    assert "/run/crio-native/pods/abcdef" not in got
    assert mountinfo.under(entries, "/nowhere") == []


def test_holding_is_the_longest_parent_mount_point():
    entries = mountinfo.parse(TABLE)
    assert mountinfo.holding(entries, "/run/crio-native/pods/abc/shm/x") == \
        "/run/crio-native/pods/abc/shm"
    assert mountinfo.holding(entries, "/run") == "/run"
    assert mountinfo.holding(entries, "/runner/x") == "/"
    assert mountinfo.holding(entries, "/etc/hosts") == "/"


def test_fstype_at_takes_the_top_mount():
    assert mountinfo.fstype_at(mountinfo.parse(TABLE))["/dev/shm"] == "tmpfs"


_PATH_CHARS = st.characters(codec="utf-8", exclude_characters="\x00/")


@given(st.lists(st.text(_PATH_CHARS, min_size=1, max_size=8), min_size=1, max_size=4))
def test_any_escaped_mount_point_round_trips(parts):
    path = "/" + "/".join(parts)
    escaped = "".join(f"\\{ord(c):03o}" if c in " \t\n\\" else c for c in path)
    line = f"50 22 0:50 / {escaped} rw - tmpfs none rw"
    entry = mountinfo.parse_line(line)
    assert entry is not None and entry.mount_point == path


def test_this_process_table_has_its_root_and_proc():
    entries = mountinfo.read()
    points = {e.mount_point for e in entries}
    assert "/" in points
    assert mountinfo.holding(entries, os.path.realpath("/proc/self")) == "/proc"
