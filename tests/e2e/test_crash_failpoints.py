"""kill -9 of the daemon at every named failpoint (crio_native/failpoints.py)
of the seven multi-step operations, then a restart without failpoints: the
interrupted object is finished or gone (never a READY pod without its
network), no container or exit code is lost, the kubelet's retry and its
cleanup succeed, and afterwards nothing is left on the host: no mount,
netns pin, link, IPAM reservation, cgroup, process or file beyond what was
there before the operation (DESIGN.md invariants 2 and 3; issue 17)."""
from __future__ import annotations

import statistics

import pytest

from crio_native._proto import api_pb2
from crio_native.failpoints import CATALOGUE, NAMES
from tests.e2e import crash_harness as h
from tests.e2e.test_containers import busybox_image  # noqa: F401
from tests.fixtures.registry import registry  # noqa: F401

pytestmark = pytest.mark.root

RESTARTS: dict[str, float] = {}      # failpoint -> seconds until the restarted daemon answered


@pytest.fixture(scope="module", autouse=True)
def bridge():
    yield
    h.delete_bridge()


@pytest.fixture(scope="module", autouse=True)
def figures(request):
    yield
    if RESTARTS:
        times = sorted(RESTARTS.values())
        p95 = times[min(len(times) - 1, int(0.95 * len(times)))]
        with request.config.pluginmanager.getplugin("capturemanager").global_and_fixture_disabled():
            print(f"\ncrash failpoints: {len(times)} kills, restart answered in median "
                  f"{statistics.median(times):.2f}s, p95 {p95:.2f}s, max {times[-1]:.2f}s")


def operation_of(failpoint: str) -> str:
    return next(op for op, names in CATALOGUE.items() if failpoint in names)


def check_after_restart(op: str, d, before: h.Before) -> None:
    """The interrupted object is finished or gone, and the kubelet's retry
    of the operation succeeds."""
    h.check_pods(d)
    pods = {p.id: p for p in h.pods(d)}
    by_id = {c.id: c for c in h.containers(d)}
    if op == "sandbox.run":
        assert all(p.state == api_pb2.SANDBOX_READY for p in pods.values()), pods
        assert len(pods) <= 1
        retried = h.run_pod(d, h.pod_config(d))
        assert not pods or retried in pods
        h.check_pods(d)
        return
    assert before.pod_id in pods, "the pod vanished"
    if op in ("sandbox.stop", "sandbox.remove"):
        # NOTREADY is saved before anything is stopped or removed
        assert pods[before.pod_id].state == api_pb2.SANDBOX_NOTREADY
        if op == "sandbox.stop":
            assert before.container_id in by_id
            h.check_containers(d, before)
        else:   # RemovePodSandbox removed the pod's containers before the pod
            assert by_id == {}
        (h.stop_pod if op == "sandbox.stop" else h.remove_pod)(d, before.pod_id)
        return
    cid = before.container_id
    if op == "container.create":
        assert not by_id or (list(by_id) == [cid] if cid else len(by_id) == 1)
        for found in by_id.values():
            assert found.state == api_pb2.CONTAINER_CREATED
        retried = h.create(d, h.container_request(d, before.pod_id, h.pod_config(d)))
        assert not by_id or retried in by_id
        h.start_container(d, retried)
        h.wait_running(d, retried)
        return
    assert cid in by_id, "the container was lost"
    if op == "container.start":
        # a start cut short after RUNNING was saved is finished at restart
        state = h.container_status(d, cid).state
        if state == api_pb2.CONTAINER_CREATED:
            h.start_container(d, cid)
        h.wait_running(d, cid)
        return
    # the stop signal or SIGKILL was sent before the cut: the exit is recorded
    st = h.wait_for(lambda: (s := h.container_status(d, cid)).state
                    == api_pb2.CONTAINER_EXITED and s, what="the recorded exit")
    assert st.exit_code in (137, 143) and st.finished_at > 0, (st.exit_code, st.reason)
    h.check_containers(d, before)
    if op == "container.stop":
        h.stop_container(d, cid, 0)
    else:
        h.remove_container(d, cid)
        assert cid not in {c.id for c in h.containers(d)}


@pytest.mark.parametrize("failpoint", NAMES)
def test_kill_at_failpoint(failpoint, tmp_path, busybox_image):  # noqa: F811
    op = operation_of(failpoint)
    d = h.crash_daemon(tmp_path / "d")
    d.image_name = busybox_image[0]
    passed = False
    try:
        h.start(d, failpoint)
        h.pull(d, d.image_name)
        baseline = h.census(d)
        # a grace period, for the stop signal to be sent; none, for the SIGKILL
        grace = 10 if failpoint == "container.stop.signalled" else 0
        before, cut = h.prepare(op, d, grace)

        h.expect_cut(cut)
        code = h.wait_killed(d)
        assert h.sigkilled(code), f"the daemon did not die at {failpoint} (exit {code})"

        RESTARTS[failpoint] = h.start(d)
        check_after_restart(op, d, before)
        h.kubelet_cleanup(d)
        d.stop()
        h.wait_processes_settled(d, baseline["processes"])
        assert h.temp_files(d) == []
        assert h.leaks(baseline, h.census(d)) == {}
        passed = True
    finally:
        if not passed:
            cleanup(d)


def cleanup(d) -> None:
    """After a failure: what a daemon without failpoints can still remove."""
    if d.proc is None:
        try:
            h.start(d)
        except Exception:  # noqa: BLE001 - the test's own failure is the one to see
            return
    try:
        for pod in h.pods(d):
            h.remove_pod(d, pod.id)
    except Exception:  # noqa: BLE001
        pass
    d.stop()
