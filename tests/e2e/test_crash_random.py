"""kill -9 of the daemon at a random moment, 0-300 ms into each of the seven
multi-step operations in turn, then a restart: no container, exit code or
log line lost, never a READY pod without its network, and after the
kubelet's cleanup nothing left on the host (tests/e2e/crash_harness.py's
census).  One daemon directory for the whole run: each iteration must bring
the host back to what it was after the image was pulled.

CRIO_NATIVE_CRASH_ITERATIONS sets the number of kills (default: two per
operation); the figures (iterations, kills that cut a call short, lost,
leaked, time until the restarted daemon answered) are printed at the end.
Most operations take well under 300 ms here, so once a call of an
operation has been seen to finish, its kills are drawn from twice its
duration (never beyond 300 ms): most of them then land inside the call."""
from __future__ import annotations

import os
import random
import signal
import statistics
import threading
import time

import pytest

from crio_native._proto import api_pb2
from crio_native.failpoints import CATALOGUE
from tests.e2e import crash_harness as h
from tests.e2e.test_containers import busybox_image  # noqa: F401
from tests.fixtures.registry import registry  # noqa: F401

pytestmark = pytest.mark.root

OPERATIONS = list(CATALOGUE)
ITERATIONS = int(os.environ.get("CRIO_NATIVE_CRASH_ITERATIONS", 2 * len(OPERATIONS)))
WINDOW = 0.300        # seconds into the call


def lost_after_restart(op: str, d, before: h.Before) -> list[str]:
    """What the restarted daemon no longer knows that it must: the pod and
    container the operation did not remove, the exit code of a container
    that ran, its first log line."""
    h.check_pods(d)
    lost = []
    pods = {p.id for p in h.pods(d)}
    by_id = {c.id for c in h.containers(d)}
    removing = op in ("container.remove", "sandbox.remove")
    if before.pod_id and before.pod_id not in pods and op != "sandbox.remove":
        lost.append(f"{op}: pod {before.pod_id[:12]}")
    cid = before.container_id
    if cid and cid not in by_id and not removing:
        lost.append(f"{op}: container {cid[:12]}")
    if cid in by_id and before.running:
        st = h.container_status(d, cid)
        if st.state == api_pb2.CONTAINER_EXITED and st.exit_code not in (137, 143):
            lost.append(f"{op}: exit code of {cid[:12]}: {st.exit_code} {st.reason}")
        if "started" not in h.log_lines(d):
            lost.append(f"{op}: log line of {cid[:12]}")
    return lost


def test_kill_at_random_moments(tmp_path, busybox_image, capsys):  # noqa: F811
    rng = random.Random(os.environ.get("CRIO_NATIVE_CRASH_SEED", "17"))
    d = h.crash_daemon(tmp_path / "d")
    d.image_name = busybox_image[0]
    restarts: list[float] = []
    took: dict[str, float] = {}          # operation -> how long a whole call took
    cut_short = 0
    lost: list[str] = []
    leaked: dict[str, dict[str, list[str]]] = {}
    try:
        h.start(d)
        h.pull(d, d.image_name)
        baseline = h.census(d)
        for i in range(ITERATIONS):
            op = OPERATIONS[i % len(OPERATIONS)]
            delay = rng.uniform(0, min(WINDOW, 2 * took.get(op, WINDOW)))
            # pid CONTAINER too: a pod without an infra process
            before, cut = h.prepare(op, d, grace=rng.choice([0, 10]),
                                    pid=rng.choice([api_pb2.POD, api_pb2.CONTAINER]))
            answer: list[object] = []

            def call(cut=cut, answer=answer, began=time.monotonic()):
                answer.append(h.expect_cut(cut))
                answer.append(time.monotonic() - began)

            caller = threading.Thread(target=call, daemon=True)
            caller.start()
            time.sleep(delay)
            d.proc.send_signal(signal.SIGKILL)
            h.wait_killed(d)
            caller.join(h.RPC_TIMEOUT)
            if answer and answer[0] is None:       # finished before the kill
                took[op] = min(took.get(op, WINDOW), answer[1])
            else:
                cut_short += 1

            restarts.append(h.start(d))
            lost += lost_after_restart(op, d, before)
            h.kubelet_cleanup(d)
            h.wait_processes_settled(d, baseline["processes"])
            left = h.leaks(baseline, h.census(d))
            if h.temp_files(d):
                left["temp files"] = h.temp_files(d)
            if left:
                leaked[f"{i}: {op} killed after {delay * 1000:.0f} ms"] = left
                break   # the next census would count it again
    finally:
        h.remove_pods_and_stop(d)
        h.delete_bridge()
    if restarts:
        times = sorted(restarts)
        p95 = times[min(len(times) - 1, int(0.95 * len(times)))]
        with capsys.disabled():
            print(f"\nkill -9 at random: {len(restarts)} iterations over {len(OPERATIONS)} "
                  f"operations, {cut_short} cut a call short, {len(lost)} lost, "
                  f"{len(leaked)} leaked; restart answered in "
                  f"median {statistics.median(times):.2f}s, p95 {p95:.2f}s, "
                  f"max {times[-1]:.2f}s")
    assert lost == [] and leaked == {}
