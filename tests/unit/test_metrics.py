"""The metrics registry and endpoint: what a CRI call adds, a port that
cannot be bound, the TLS keys' pairing."""
from __future__ import annotations

import socket
import urllib.request

import pytest
from prometheus_client import generate_latest

from crio_native.config.load import ConfigError
from crio_native.config.sections import MetricsConfig
from crio_native.errors import FailedPrecondition
from crio_native.metrics import hooks
from crio_native.metrics.collectors import DaemonMetrics
from crio_native.metrics.server import metrics_served
from tests.ports import free_port

P = "container_runtime_crio_native"


def test_a_call_is_counted_timed_and_its_error_kept():
    m = DaemonMetrics()
    m.observe_call("RuntimeService.Version", 0.002, "OK")
    m.observe_call("RuntimeService.ContainerStatus", 0.003, "NOT_FOUND")
    text = generate_latest(m.registry).decode()
    assert f'{P}_operations_total{{operation="RuntimeService.Version"}} 1.0' in text
    assert (f'{P}_operations_errors_total{{code="NOT_FOUND",'
            f'operation="RuntimeService.ContainerStatus"}} 1.0') in text
    assert f'{P}_operations_latency_seconds_bucket{{le="0.0025",' \
           f'operation="RuntimeService.Version"}} 1.0' in text
    assert "process_resident_memory_bytes" in text


def test_container_counters():
    m = DaemonMetrics()
    m.observe_created("runc")
    m.observe_exit("OOMKilled", "app")
    m.observe_exit("Completed", "init")
    text = generate_latest(m.registry).decode()
    assert f'{P}_containers_created_total{{handler="runc"}} 1.0' in text
    assert f'{P}_containers_exited_total{{reason="OOMKilled"}} 1.0' in text
    assert f'{P}_containers_oom_total{{name="app"}} 1.0' in text
    assert 'name="init"' not in text


def test_served_while_the_block_runs():
    port = free_port()
    with metrics_served(MetricsConfig(enable_metrics=True, metrics_port=port)) as m:
        assert hooks.current is m
        m.observe_call("RuntimeService.Version", 0.001, "OK")
        body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read()
        assert f"{P}_operations_total".encode() in body
    assert hooks.current is None
    with pytest.raises(OSError):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2)


def test_off_serves_nothing():
    with metrics_served(MetricsConfig(enable_metrics=False)) as m:
        assert m is None and hooks.current is None


def test_a_port_in_use_names_the_port():
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        config = MetricsConfig(enable_metrics=True, metrics_port=port)
        with pytest.raises(FailedPrecondition, match=f"metrics.metrics_port: .*:{port}: "):
            with metrics_served(config):
                pass
    assert hooks.current is None


def test_tls_needs_both_files():
    with pytest.raises(ConfigError, match="metrics.metrics_key"):
        MetricsConfig(metrics_cert="/etc/x.pem").validate()
    MetricsConfig(metrics_cert="/etc/x.pem", metrics_key="/etc/x.key").validate()
