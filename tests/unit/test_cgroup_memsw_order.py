"""The order of a v1 group's memory and memory+swap limit writes, against a
directory that stands in for a v1 memory group and refuses, as the kernel
does, a write that would put memory.limit_in_bytes above
memory.memsw.limit_in_bytes (EINVAL).  No root."""
from __future__ import annotations

import errno
from pathlib import Path

import pytest

from crio_native.errors import FailedPrecondition
from crio_native.linux import cgroups
from crio_native.linux.cgroups import group, memsw

MIB = 1 << 20
UNLIMITED = 9223372036854771712     # what the kernel shows for -1 (page aligned)


class FakeMemoryGroup:
    """A v1 memory group's two limit files (memsw only with swap accounting)."""

    def __init__(self, d: Path, limit: int = UNLIMITED, swap: int | None = UNLIMITED):
        self.d = d
        d.mkdir()
        (d / memsw.LIMIT).write_text(f"{limit}\n")
        if swap is not None:
            (d / memsw.MEMSW).write_text(f"{swap}\n")
        self.writes: list[str] = []

    def value(self, name: str) -> int:
        return int((self.d / name).read_text())

    def write(self, path: Path, value: str) -> None:
        if not path.exists():
            raise FileNotFoundError(errno.ENOENT, "No such file or directory", str(path))
        new = UNLIMITED if value == "-1" else int(value)
        limit = new if path.name == memsw.LIMIT else self.value(memsw.LIMIT)
        swap = new if path.name == memsw.MEMSW else (
            self.value(memsw.MEMSW) if (self.d / memsw.MEMSW).exists() else UNLIMITED)
        if limit > swap:
            raise OSError(errno.EINVAL, "Invalid argument", str(path))
        path.write_text(f"{new}\n")
        self.writes.append(path.name)


@pytest.fixture
def group_dir(tmp_path, monkeypatch):
    def make(**kw) -> FakeMemoryGroup:
        g = FakeMemoryGroup(tmp_path / "crio-c", **kw)
        monkeypatch.setattr(group, "_write_existing", g.write)
        return g
    return make


def v1_writes(d: Path, limit: int, swap: int) -> list[tuple[Path, str]]:
    """What a v1 plan writes for OCI memory {limit, swap}: limit, then memsw."""
    files = cgroups.resource_files({"memory": {"limit": limit, "swap": swap}})
    return [(d / v1, value.split("|")[0]) for _field, _ctrl, v1, _v2, value in files]


@pytest.mark.parametrize("before,after,order", [
    ((UNLIMITED, UNLIMITED), (64 * MIB, 64 * MIB), [memsw.LIMIT, memsw.MEMSW]),   # create
    ((64 * MIB, 64 * MIB), (128 * MIB, 128 * MIB), [memsw.MEMSW, memsw.LIMIT]),   # raise
    ((128 * MIB, 128 * MIB), (48 * MIB, 48 * MIB), [memsw.LIMIT, memsw.MEMSW]),   # lower
    ((64 * MIB, 128 * MIB), (96 * MIB, 96 * MIB), [memsw.MEMSW, memsw.LIMIT]),
    ((128 * MIB, 256 * MIB), (64 * MIB, 512 * MIB), [memsw.MEMSW, memsw.LIMIT]),
    ((64 * MIB, 64 * MIB), (UNLIMITED, UNLIMITED), [memsw.MEMSW, memsw.LIMIT]),   # unlimit
])
def test_a_resize_writes_memsw_and_the_limit_in_an_order_the_kernel_takes(
        group_dir, before, after, order):
    g = group_dir(limit=before[0], swap=before[1])
    limit, swap = (-1 if v == UNLIMITED else v for v in after)
    cgroups.write_limits(v1_writes(g.d, limit, swap))
    assert (g.value(memsw.LIMIT), g.value(memsw.MEMSW)) == after
    assert g.writes == order


def test_the_plan_order_alone_is_what_the_kernel_refuses(group_dir):
    # the reason for the reordering: limit first fails on a raise
    g = group_dir(limit=64 * MIB, swap=64 * MIB)
    with pytest.raises(OSError) as e:
        for path, value in v1_writes(g.d, 128 * MIB, 128 * MIB):
            g.write(path, value)
    assert e.value.errno == errno.EINVAL


def test_only_the_groups_own_pair_moves(tmp_path, group_dir):
    g = group_dir(limit=64 * MIB, swap=64 * MIB)
    other = tmp_path / "pids"
    writes = [(other / "pids.max", "10"), *v1_writes(g.d, 128 * MIB, 128 * MIB),
              (other / "cpu.shares", "2")]
    assert memsw.in_kernel_order(writes) == [
        writes[0], writes[2], writes[1], writes[3]]
    # a memsw with no limit written beside it stays where it is
    alone = [(g.d / memsw.MEMSW, str(256 * MIB))]
    assert memsw.in_kernel_order(alone) == alone


def test_without_swap_accounting_a_no_swap_memsw_is_left_out(group_dir):
    g = group_dir(limit=UNLIMITED, swap=None)
    cgroups.write_limits(v1_writes(g.d, 64 * MIB, 64 * MIB))
    assert g.value(memsw.LIMIT) == 64 * MIB and g.writes == [memsw.LIMIT]
    cgroups.write_limits(v1_writes(g.d, 128 * MIB, 128 * MIB))       # and resized
    assert g.value(memsw.LIMIT) == 128 * MIB
    # swap beyond the limit is asked for: that stays an error naming the file
    with pytest.raises(FailedPrecondition) as e:
        cgroups.write_limits(v1_writes(g.d, 64 * MIB, 256 * MIB))
    assert memsw.MEMSW in str(e.value) and "missing" in str(e.value)


def test_v2_swap_is_not_reordered(tmp_path):
    writes = [(tmp_path / "memory.max", "1"), (tmp_path / "memory.swap.max", "0")]
    assert memsw.in_kernel_order(writes) == writes
