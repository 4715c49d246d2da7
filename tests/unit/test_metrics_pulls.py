"""The pull and launch metrics, the pull failure reasons, and the endpoint on
a unix socket (metrics_socket)."""
from __future__ import annotations

import http.client
import os
import socket
import stat

import pytest
from prometheus_client import generate_latest

from crio_native.config.load import ConfigError
from crio_native.config.sections import MetricsConfig
from crio_native.errors import InvalidArgument, ResourceExhausted
from crio_native.image import errors as image_errors
from crio_native.metrics import hooks
from crio_native.metrics.collectors import DaemonMetrics
from crio_native.metrics.pull_failure import REASONS, pull_failure_reason
from crio_native.metrics.server import metrics_served
from tests.ports import free_port

P = "container_runtime_crio_native"


def test_a_pull_counts_layers_bytes_time_and_in_flight():
    m = DaemonMetrics()
    m.observe_pull_started()
    m.observe_pull_started()
    text = generate_latest(m.registry).decode()
    assert f"{P}_image_pulls_in_flight 2.0" in text
    m.observe_layer(1000)
    m.observe_layer(24)
    m.observe_pull_done(1.5, None)
    m.observe_pull_done(0.1, "not_found")
    text = generate_latest(m.registry).decode()
    assert f"{P}_image_pulls_in_flight 0.0" in text
    assert f"{P}_image_pulls_layers_total 2.0" in text
    assert f"{P}_image_pulls_bytes_total 1024.0" in text
    assert f"{P}_image_pulls_duration_seconds_count 1.0" in text   # successes only
    assert f'{P}_image_pulls_duration_seconds_bucket{{le="2.5"}} 1.0' in text
    assert f'{P}_image_pulls_failures_total{{reason="not_found"}} 1.0' in text


def test_launch_latency_by_handler_and_step():
    m = DaemonMetrics()
    m.observe_launch("runc", "create", 0.02)
    m.observe_launch("runc", "start", 0.003)
    text = generate_latest(m.registry).decode()
    assert f'{P}_handler_launch_seconds_count{{handler="runc",step="create"}} 1.0' in text
    assert f'{P}_handler_launch_seconds_bucket{{handler="runc",le="0.005",step="start"}} 1.0' \
        in text
    assert f'{P}_containers_started_total{{handler="runc"}} 1.0' in text


@pytest.mark.parametrize("exc, reason", [
    (image_errors.ManifestUnknown("no such tag"), "not_found"),
    (image_errors.Unauthenticated("denied"), "unauthenticated"),
    (image_errors.PullTimeout("stalled"), "timeout"),
    (image_errors.RegistryUnavailable("refused"), "registry_unavailable"),
    (image_errors.PolicyRejected("unsigned"), "policy_rejected"),
    (image_errors.UnsafeLayer("../x"), "unsafe_layer"),
    (image_errors.ContentMismatch("digest"), "content_mismatch"),
    (ResourceExhausted("ENOSPC"), "no_space"),
    (InvalidArgument("bad name"), "invalid"),
    (RuntimeError("boom"), "other"),
])
def test_pull_failure_reasons_are_few_fixed_words(exc, reason):
    assert pull_failure_reason(exc) == reason
    assert reason in REASONS


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: str):
        super().__init__("localhost", timeout=10)
        self.socket_path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(self.socket_path)


def test_served_on_a_unix_socket_too(tmp_path):
    path = tmp_path / "run" / "metrics.sock"
    config = MetricsConfig(enable_metrics=True, metrics_port=free_port(),
                           metrics_socket=str(path))
    with metrics_served(config) as m:
        assert hooks.current is m
        assert stat.S_ISSOCK(path.stat().st_mode) and stat.S_IMODE(path.stat().st_mode) == 0o660
        m.observe_layer(7)
        conn = UnixHTTPConnection(str(path))
        conn.request("GET", "/metrics")
        response = conn.getresponse()
        body = response.read().decode()
        conn.close()
        assert response.status == 200
        assert f"{P}_image_pulls_bytes_total 7.0" in body
    assert not path.exists()


def test_a_stale_socket_is_replaced_and_a_bad_path_named(tmp_path):
    path = tmp_path / "metrics.sock"
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(path))
    stale.close()
    with metrics_served(MetricsConfig(enable_metrics=True, metrics_port=free_port(),
                                      metrics_socket=str(path))):
        assert path.exists()
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(Exception, match="metrics.metrics_socket"):
        with metrics_served(MetricsConfig(enable_metrics=True, metrics_port=free_port(),
                                          metrics_socket=str(blocker / "m.sock"))):
            pass
    assert hooks.current is None


def test_metrics_socket_must_be_absolute():
    with pytest.raises(ConfigError, match="metrics.metrics_socket"):
        MetricsConfig(metrics_socket="run/m.sock").validate()
    MetricsConfig(metrics_socket=os.path.abspath("m.sock")).validate()
