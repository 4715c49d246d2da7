"""The rootfs part of the plan: --no-pivot, and the record numbers and
layouts of the rootfs/mount records agreeing with src/_native/plan.h and
plan.c.  No root needed."""
from __future__ import annotations

import copy
import re
from pathlib import Path

import pytest

from crio_native.runtime.builtin import records as r
from crio_native.runtime.builtin.plan import plan_records
from crio_native.runtime.builtin.records import Rec
from tests.unit.test_plan_build import BASE, HOST
from tests.unit.test_plan_build import bundle  # noqa: F401  (fixture)

NATIVE = Path(__file__).resolve().parents[2] / "src" / "_native"


def types(records):
    return [x.type for x in records]


def test_no_pivot_is_a_record_of_the_rootfs_part(bundle):
    recs = plan_records(copy.deepcopy(BASE), bundle, host=HOST, no_pivot=True)
    kinds = types(recs)
    assert kinds.count(Rec.NO_PIVOT) == 1
    assert kinds.index(Rec.ROOTFS) < kinds.index(Rec.NO_PIVOT) < kinds.index(Rec.MOUNT)
    assert Rec.NO_PIVOT in types(r.decode(r.encode(recs)))


def test_pivot_root_by_default(bundle):
    assert Rec.NO_PIVOT not in types(plan_records(copy.deepcopy(BASE), bundle, host=HOST))


def _c_enum(name: str) -> int:
    m = re.search(rf"\b{name}\s*=\s*(0x[0-9a-fA-F]+|\d+)", (NATIVE / "plan.h").read_text())
    assert m, f"{name} not in plan.h"
    return int(m.group(1), 0)


@pytest.mark.parametrize("rec, c_name", [
    (Rec.NO_PIVOT, "CRN_PLAN_NO_PIVOT"),
    (Rec.MOUNT_LABEL, "CRN_PLAN_MOUNT_LABEL"),
])
def test_record_numbers_and_layouts_match_plan_h(rec, c_name):
    assert rec == _c_enum(c_name)
    layout = re.search(rf"case {c_name}: return \"(\w*)\";", (NATIVE / "plan.c").read_text())
    assert layout and layout.group(1) == r.LAYOUTS[rec]


def test_mount_kinds_and_label_max_match_plan_h():
    assert r.MOUNT_LABEL_XATTR == _c_enum("CRN_MOUNT_LABEL_XATTR")
    m = re.search(r"#define CRN_LABEL_MAX (\d+)", (NATIVE / "plan.h").read_text())
    assert m and int(m.group(1)) == r.LABEL_MAX
