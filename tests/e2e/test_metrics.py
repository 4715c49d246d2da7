"""The metrics endpoint scraped by a real Prometheus (Debian's): the daemon
is `up`, and the operation counter of a CRI method moves after a call."""
from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
import urllib.parse
import urllib.request

import grpc
import pytest

from crio_native._proto import api_pb2
from tests.ports import free_port

pytestmark = pytest.mark.root

PROMETHEUS = shutil.which("prometheus")


def query(port: int, expr: str) -> list:
    url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    with urllib.request.urlopen(url, timeout=10) as r:
        return json.load(r)["data"]["result"]


def wait_for_value(port: int, expr: str, want, timeout: float = 60.0) -> float:
    deadline = time.monotonic() + timeout
    while True:
        try:
            result = query(port, expr)
        except OSError:
            result = []
        if result and want(float(result[0]["value"][1])):
            return float(result[0]["value"][1])
        assert time.monotonic() < deadline, f"{expr}: {result}"
        time.sleep(0.5)


@pytest.fixture
def prometheus(tmp_path):
    """Start Prometheus scraping `target` every second; yields a starter."""
    if PROMETHEUS is None:
        pytest.skip("no prometheus binary (make install-deps installs Debian's)")
    procs = []

    def start(target: str) -> int:
        port = free_port()
        (tmp_path / "prometheus.yml").write_text(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
            "scrape_configs:\n  - job_name: crio-native\n"
            f"    static_configs:\n      - targets: ['{target}']\n")
        procs.append(subprocess.Popen(
            [PROMETHEUS, f"--config.file={tmp_path}/prometheus.yml",
             f"--storage.tsdb.path={tmp_path}/tsdb", f"--web.listen-address=127.0.0.1:{port}"],
            stdout=subprocess.DEVNULL, stderr=open(tmp_path / "prometheus.log", "ab")))
        return port
    yield start
    for p in procs:
        p.terminate()
        p.wait(timeout=30)


def test_prometheus_scrapes_the_operation_counters(daemon_factory, prometheus):
    metrics_port = free_port()
    d = daemon_factory()
    (d.base / "crio-native.conf.d").mkdir(parents=True)
    (d.base / "crio-native.conf.d" / "50-metrics.conf").write_text(
        f"[metrics]\nenable_metrics = true\nmetrics_port = {metrics_port}\n")
    d.start()
    port = prometheus(f"127.0.0.1:{metrics_port}")
    wait_for_value(port, 'up{job="crio-native"}', lambda v: v == 1)
    op = 'container_runtime_crio_native_operations_total{operation="RuntimeService.Version"}'
    before = wait_for_value(port, op, lambda v: v >= 1)    # the harness's readiness calls
    for _ in range(3):
        d.runtime.Version(api_pb2.VersionRequest())
    wait_for_value(port, op, lambda v: v >= before + 3)
    with pytest.raises(grpc.RpcError):
        d.runtime.ContainerStatus(api_pb2.ContainerStatusRequest(container_id="f" * 64))
    wait_for_value(port, 'container_runtime_crio_native_operations_errors_total'
                   '{operation="RuntimeService.ContainerStatus",code="NOT_FOUND"}',
                   lambda v: v == 1)


def test_a_metrics_port_in_use_stops_the_start(daemon_factory):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        d = daemon_factory()
        (d.base / "crio-native.conf.d").mkdir(parents=True)
        (d.base / "crio-native.conf.d" / "50-metrics.conf").write_text(
            f"[metrics]\nenable_metrics = true\nmetrics_port = {port}\n")
        with pytest.raises(RuntimeError, match=f"metrics.metrics_port: .*{port}"):
            d.start()
