"""`crio-native status` against a running daemon: handlers, objects by
state, and each configuration key with its origin (flag, drop-in, embedded
default); a daemon that does not answer is a clear error."""
from __future__ import annotations

import json
import subprocess

import pytest

from crio_native._proto import api_pb2
from tests.e2e.daemon import crio_native_command

pytestmark = pytest.mark.root


def status(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(crio_native_command("status", *args), capture_output=True,
                          text=True, timeout=60)


def test_status_shows_origins_handlers_and_objects(daemon_factory, tmp_path):
    d = daemon_factory()
    drop_in = d.base / "crio-native.conf.d" / "50-status.conf"
    drop_in.parent.mkdir(parents=True)
    drop_in.write_text('log_level = "debug"\n')
    d.start()
    config = api_pb2.PodSandboxConfig(
        metadata=api_pb2.PodSandboxMetadata(name="st", namespace="default", uid="uid-st"),
        hostname="st", log_directory=str(tmp_path / "logs"))
    opts = config.linux.security_context.namespace_options
    opts.network, opts.pid = api_pb2.NODE, api_pb2.CONTAINER
    pod = d.runtime.RunPodSandbox(api_pb2.RunPodSandboxRequest(config=config),
                                  timeout=60).pod_sandbox_id

    got = status("--socket", str(d.socket), "--json")
    assert got.returncode == 0, got.stderr
    doc = json.loads(got.stdout)
    cfg = doc["config"]
    assert cfg["log_level"] == {"value": "debug", "origin": str(drop_in)}
    assert cfg["root"] == {"value": str(d.base / "root"), "origin": "flag --root"}
    assert cfg["image.pause_image"]["origin"] == "embedded default"
    assert cfg["runtime.runtimes.runc.runtime_type"]["origin"] == "embedded default"
    assert str(drop_in) in doc["config_files"]
    assert {"(default)", "builtin", "runc", "crun"} <= set(doc["handlers"])
    assert doc["conditions"]["RuntimeReady"] is True
    assert doc["summary"] == {"pods": {"ready": 1}, "containers": {}}

    text = status("--socket", str(d.socket))
    assert text.returncode == 0, text.stderr
    assert f'log_level = "debug"  # {drop_in}' in text.stdout
    assert "handlers:" in text.stdout and "builtin" in text.stdout
    d.runtime.RemovePodSandbox(api_pb2.RemovePodSandboxRequest(pod_sandbox_id=pod))


def test_status_without_a_daemon_says_so(tmp_path):
    sock = tmp_path / "none.sock"
    got = status("--socket", str(sock))
    assert got.returncode == 1
    assert f"no answer from the daemon on {sock}" in got.stderr
