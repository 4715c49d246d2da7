"""The daemon as a Type=notify service without systemd: a datagram socket of
the test's stands in for $NOTIFY_SOCKET.  READY=1 comes once the CRI socket
answers, SIGHUP reloads the configuration between RELOADING=1 and READY=1,
SIGTERM says STOPPING=1 and exits 0.  (tests/e2e/test_systemd_unit.py runs
the shipped unit under a real systemd.)"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import time

import grpc
import pytest

from crio_native._proto import api_pb2
from tests.e2e.daemon import crio_native_command

pytestmark = pytest.mark.root


@pytest.fixture
def manager(tmp_path):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(str(tmp_path / "notify"))
    s.settimeout(30)
    yield s
    s.close()


def next_state(manager, key: str) -> list[str]:
    """The lines of the next notification that has `key`=..., skipping others."""
    while True:
        lines = manager.recv(4096).decode().split("\n")
        if any(line.startswith(key + "=") for line in lines):
            return lines


def wait_for_log(d, text: str, timeout: float = 20.0) -> str:
    deadline = time.monotonic() + timeout
    while text not in d.log():
        assert time.monotonic() < deadline, f"no {text!r} in the log: {d.log()}"
        time.sleep(0.05)
    return next(line for line in d.log().splitlines() if text in line)


def test_ready_reload_and_stopping_are_notified(daemon_factory, manager, tmp_path):
    d = daemon_factory()
    env = {**os.environ, "NOTIFY_SOCKET": str(tmp_path / "notify")}
    d.proc = subprocess.Popen(crio_native_command(*d.args(), "daemon"), env=env,
                              stdout=subprocess.DEVNULL, stderr=open(d.log_path, "ab"))
    d.channel = grpc.insecure_channel(f"unix:{d.socket}")

    ready = next_state(manager, "READY")
    assert f"STATUS=serving CRI on {d.socket}" in ready
    # READY means answering: no retry, no wait_for_ready
    assert d.runtime.Version(api_pb2.VersionRequest(), timeout=5).runtime_name == "crio-native"
    assert "RuntimeService.Version" not in d.log()          # info level: no rpc lines

    (d.base / "crio-native.conf.d" / "50-reload.conf").write_text(
        'log_level = "debug"\n[image]\npause_image = "example.com/pause:9"\n')
    d.proc.send_signal(signal.SIGHUP)
    assert "RELOADING=1" in next_state(manager, "RELOADING")
    ready = next_state(manager, "READY")
    assert any("waiting for a restart: image.pause_image" in line for line in ready), ready
    line = wait_for_log(d, "configuration reloaded")
    assert 'applied="log_level: info -> debug"' in line
    assert 'needs_restart="image.pause_image: registry.k8s.io/pause:3.10 -> ' \
           'example.com/pause:9"' in line
    d.runtime.Version(api_pb2.VersionRequest(), timeout=5)
    wait_for_log(d, "method=RuntimeService.Version")          # debug applied at once

    (d.base / "crio-native.conf.d" / "60-bad.conf").write_text('log_level = "loud"\n')
    d.proc.send_signal(signal.SIGHUP)
    ready = next_state(manager, "READY")
    assert any("the last reload failed" in line for line in ready), ready
    line = wait_for_log(d, "configuration reload failed")
    assert "60-bad.conf: log_level" in line
    assert d.runtime.Version(api_pb2.VersionRequest(), timeout=5).runtime_name == "crio-native"

    d.proc.send_signal(signal.SIGTERM)
    assert "STOPPING=1" in next_state(manager, "STOPPING")
    assert d.proc.wait(timeout=30) == 0
    d.proc = None
    assert "crio-native stopped" in d.log()
