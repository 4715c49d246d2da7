"""The service manager notifications (sd_notify protocol) against a datagram
socket standing in for systemd's."""
from __future__ import annotations

import os
import socket

import pytest

from crio_native.notify import ServiceNotifier, socket_address


@pytest.fixture
def manager(tmp_path):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(str(tmp_path / "notify"))
    s.settimeout(5)
    yield s
    s.close()


def received(s) -> list[str]:
    return s.recv(4096).decode().split("\n")


def test_from_environment_takes_the_address_out_of_it(monkeypatch, manager, tmp_path):
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "notify"))
    n = ServiceNotifier.from_environment()
    assert "NOTIFY_SOCKET" not in os.environ          # children must not inherit it
    assert n.enabled
    assert n.ready("serving")
    assert received(manager) == ["READY=1", "STATUS=serving"]
    assert n.reloading()
    lines = received(manager)
    assert lines[0] == "RELOADING=1" and lines[1].startswith("MONOTONIC_USEC=")
    assert int(lines[1].split("=")[1]) > 0
    assert n.stopping()
    assert received(manager) == ["STOPPING=1", "STATUS=shutting down"]


def test_without_a_service_manager_nothing_is_sent(monkeypatch):
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    n = ServiceNotifier.from_environment()
    assert not n.enabled and not n.ready("x")


def test_a_gone_socket_is_not_an_error(tmp_path):
    n = ServiceNotifier(str(tmp_path / "nothing-here"))
    assert not n.ready("x") and not n.stopping()


def test_addresses():
    assert socket_address("@abstract") == "\0abstract"
    assert socket_address("/run/systemd/notify") == "/run/systemd/notify"
    assert socket_address("vsock:2:1234") is None
