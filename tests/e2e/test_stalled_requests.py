"""A retried RunPodSandbox whose first call is stuck (here in a slow CNI
plugin, the usual culprit) answers DEADLINE_EXCEEDED before its client's
deadline, naming the step the first call has passed; the metrics count it
by that step (resources_stalled_at_stage) and time every step of the calls
that finish (operation_step_duration_seconds)."""
from __future__ import annotations

import re
import threading
import time
import urllib.request

import grpc
import pytest

from crio_native._proto import api_pb2
from tests.e2e import cni
from tests.ports import free_port
from tests.e2e.test_pod_sandbox import pod_config, remove, write_plugin

pytestmark = pytest.mark.root

SLOW_ADD = """#!/bin/sh
# Passes the previous result through, after announcing itself and sleeping on ADD.
case "$CNI_COMMAND" in
ADD) echo started > "{marker}"; sleep {seconds}
     python3 -c 'import json,sys; print(json.dumps(json.load(sys.stdin)["prevResult"]))';;
esac
exit 0
"""


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        return r.read().decode()


def sample(text: str, name: str, **labels: str) -> float:
    want = ",".join(f'{k}="{v}"' for k, v in labels.items())
    m = re.search(rf"^{re.escape(name)}\{{{re.escape(want)}\}} (\S+)$", text, re.M)
    return float(m.group(1)) if m else 0.0


def test_retry_of_a_stuck_run_pod_sandbox_names_the_step(daemon_factory, tmp_path):
    plugins, marker = tmp_path / "plugins", tmp_path / "add-started"
    write_plugin(plugins, "crn-slow-add",
                 SLOW_ADD.replace("{marker}", str(marker)).replace("{seconds}", "8"))
    port = free_port()
    d = daemon_factory("--cni-plugin-dir", cni.PLUGIN_DIR, "--cni-plugin-dir", str(plugins))
    (d.base / "crio-native.conf.d").mkdir(parents=True)
    (d.base / "crio-native.conf.d" / "50-metrics.conf").write_text(
        f"[metrics]\nenable_metrics = true\nmetrics_port = {port}\n")
    cni.write_network(d.network_dir, tmp_path / "ipam", extra_plugins=[{"type": "crn-slow-add"}])
    d.start()
    config = pod_config(name="stuck", uid="uid-stuck")
    request = api_pb2.RunPodSandboxRequest(config=config)
    first: dict[str, str] = {}
    caller = threading.Thread(target=lambda: first.update(
        id=d.runtime.RunPodSandbox(request, timeout=60).pod_sandbox_id))
    try:
        caller.start()
        deadline = time.monotonic() + 30
        while not marker.exists():
            assert time.monotonic() < deadline, "the slow plugin never ran"
            time.sleep(0.05)
        began = time.monotonic()
        with pytest.raises(grpc.RpcError) as info:
            d.runtime.RunPodSandbox(request, timeout=4)
        # answered by the daemon before the client's own deadline
        assert time.monotonic() - began < 3.9
        assert info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        details = info.value.details()
        assert "still being created by an earlier request" in details
        assert "passed step 'sandbox.run.loopback_added'" in details, details
        text = scrape(port)
        assert sample(text, "container_runtime_crio_native_resources_stalled_at_stage_total",
                      stage="sandbox.run.loopback_added") == 1
        caller.join(timeout=60)
        assert first.get("id")
        # once the first call is done, a retry gets its pod, as the kubelet expects
        assert d.runtime.RunPodSandbox(request, timeout=30).pod_sandbox_id == first["id"]
        text = scrape(port)
        # the slow step is where the first call's time went
        slow = sample(text, "container_runtime_crio_native_operation_step_duration_seconds_sum",
                      step="sandbox.run.network_added")
        assert slow >= 7.5
        assert sample(text, "container_runtime_crio_native_operation_step_duration_seconds_count",
                      step="sandbox.run.ready") == 1
        remove(d, first["id"])
    finally:
        caller.join(timeout=60)
        d.stop()
        cni.delete_bridge()
