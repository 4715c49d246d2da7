"""Startup, exclusive ownership, logging and shutdown of the daemon."""
from __future__ import annotations

import json
import signal

import pytest

from crio_native._proto import api_pb2
from tests.e2e.daemon import run_cli

pytestmark = pytest.mark.root


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_stops_cleanly_and_removes_the_socket(daemon_factory, sig):
    d = daemon_factory().start()
    assert d.socket.exists()
    assert d.stop(sig) == 0
    assert not d.socket.exists()
    assert "crio-native stopped" in d.log()


def test_second_instance_on_the_same_socket_is_refused(daemon_factory, tmp_path):
    first = daemon_factory().start()
    second = daemon_factory(listen=first.socket)
    out = run_cli(*second.args(), "daemon")
    assert out.returncode == 1
    assert "refusing to start" in out.stderr
    assert f"pid {first.proc.pid}" in out.stderr
    # The first daemon keeps its socket and keeps answering.
    assert first.runtime.Version(api_pb2.VersionRequest()).runtime_name == "crio-native"


def test_second_instance_on_the_same_state_root_is_refused(daemon_factory, tmp_path):
    first = daemon_factory().start()
    second = daemon_factory(listen=tmp_path / "other.sock")
    out = run_cli(*second.args(), "--root", str(first.base / "root"), "daemon")
    assert out.returncode == 1
    assert str(first.base / "root") in out.stderr
    assert not (tmp_path / "other.sock").exists()


def test_stale_socket_from_a_killed_daemon_is_replaced(daemon_factory):
    d = daemon_factory().start()
    d.stop(signal.SIGKILL)
    assert d.socket.exists(), "SIGKILL leaves the socket file behind"
    d.start()
    assert d.runtime.Version(api_pb2.VersionRequest()).runtime_name == "crio-native"


def test_debug_log_has_one_line_per_rpc(daemon_factory):
    d = daemon_factory("--log-level", "debug", "--log-format", "json").start()
    d.runtime.Status(api_pb2.StatusRequest())
    d.stop()
    records = [json.loads(line) for line in d.log().splitlines() if line.startswith("{")]
    rpcs = [r for r in records if r.get("msg") == "rpc"]
    status = [r for r in rpcs if r["method"] == "RuntimeService.Status"]
    assert len(status) == 1
    assert status[0]["code"] == "OK" and status[0]["duration_ms"] >= 0


def test_info_level_does_not_log_rpcs(daemon_factory):
    d = daemon_factory().start()
    d.runtime.Status(api_pb2.StatusRequest())
    d.stop()
    assert "RuntimeService.Status" not in d.log()
    assert "crio-native started" in d.log()
