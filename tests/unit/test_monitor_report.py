"""The monitor's final report line on the sync socket, and the controlling
tty record the plan gets for a monitor terminal.  No root needed."""
from __future__ import annotations

import copy

import pytest

from crio_native._native import launch
from crio_native.errors import Internal, NativeError, Unimplemented
from crio_native.monitor.launch import ReportLine, _parse_report, parse_report_line
from crio_native.runtime.builtin.plan import plan_records
from crio_native.runtime.builtin.records import Rec, decode, encode

from tests.unit.test_plan_build import BASE, HOST


@pytest.fixture
def bundle(tmp_path):
    (tmp_path / "rootfs").mkdir()
    return tmp_path


@pytest.mark.parametrize("line, want", [
    (b"ok 10 11", ReportLine(True, monitor_pid=10, container_pid=11)),
    (b"ok 10 11\n", ReportLine(True, monitor_pid=10, container_pid=11)),
    (b"error 2 execvp `foo`", ReportLine(False, errno=2, message="execvp `foo`")),
    (b"error 0 runtime create failed with status 1: x",
     ReportLine(False, errno=0, message="runtime create failed with status 1: x")),
    (b"error 2 stage=lookup execve `no-such`",
     ReportLine(False, errno=2, stage="lookup", message="execve `no-such`")),
    (b"error 0 stage=hooks createRuntime hook #0 (/x): exit status 3",
     ReportLine(False, errno=0, stage="hooks",
                message="createRuntime hook #0 (/x): exit status 3")),
    (b"error 22", ReportLine(False, errno=22)),
    (b"", None), (b"pid 12", None), (b"ok x y", None), (b"error x y", None),
])
def test_parse_report_line(line, want):
    assert parse_report_line(line) == want


def test_stage_error_is_a_launch_error():
    with pytest.raises(FileNotFoundError) as e:
        _parse_report("c1", b"error 2 stage=lookup execve `no-such`")
    assert isinstance(e.value, NativeError)
    assert e.value.stage == "lookup" and e.value.errno == 2
    assert "execve `no-such`" in e.value.strerror


def test_plain_errors_keep_their_form():
    with pytest.raises(FileNotFoundError, match="monitor for container c1: open `x`"):
        _parse_report("c1", b"error 2 open `x`")
    with pytest.raises(Internal, match="runtime create failed"):
        _parse_report("c1", b"error 0 runtime create failed with status 1: boom")
    with pytest.raises(Internal, match="without a report"):
        _parse_report("c1", b"")


def test_terminal_plan_makes_the_pty_in_the_container(bundle):
    """The monitor's --terminal with --plan takes the master the child
    sends: the plan's first record has the child make the pty."""
    spec = copy.deepcopy(BASE)
    assert Rec.CONSOLE not in {r.type for r in plan_records(spec, bundle, host=HOST)}
    spec["process"]["terminal"] = True
    with pytest.raises(Unimplemented, match="process.terminal"):
        plan_records(spec, bundle, host=HOST)
    recs = plan_records(spec, bundle, host=HOST, console=True)
    assert recs[0].type == Rec.CONSOLE
    assert decode(encode(recs))[0].type == Rec.CONSOLE
    launch.validate(encode(recs))   # the C side knows the record
