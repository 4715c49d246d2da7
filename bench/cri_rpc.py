"""Daemon start-up, CRI round trips (Version, Status) on the unix socket, and
the throughput of small calls: CALLERS threads sharing one channel (as the
kubelet's probes share its connection) each calling Version ROUNDS times,
ops/s = all calls / wall time (the wire's per-call cost, issue #14).

The peer, a CRI-O or containerd socket, is measured in the same run when one
is listening at its default path; neither is installed on the development
hosts, so those lines say so instead of printing a ratio.

Environment: CRN_BENCH_RPC_CALLERS (default 4), CRN_BENCH_RPC_ROUNDS (Version
calls per caller, default 1000; 0 skips the throughput part)."""
from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

import grpc

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import ratio, summarize, time_calls, time_concurrent  # noqa: E402
from crio_native._proto import api_pb2, api_pb2_grpc  # noqa: E402
from tests.e2e.daemon import Daemon  # noqa: E402

PEER_SOCKETS = {"containerd": "/run/containerd/containerd.sock", "crio": "/run/crio/crio.sock"}
ITERATIONS = 500
CALLERS = int(os.environ.get("CRN_BENCH_RPC_CALLERS", "4"))
ROUNDS = int(os.environ.get("CRN_BENCH_RPC_ROUNDS", "1000"))


def round_trips(channel: grpc.Channel) -> dict[str, float]:
    stub = api_pb2_grpc.RuntimeServiceStub(channel)
    return {
        "Version": summarize("Version", time_calls(
            lambda: stub.Version(api_pb2.VersionRequest()), ITERATIONS)),
        "Status": summarize("Status", time_calls(
            lambda: stub.Status(api_pb2.StatusRequest()), ITERATIONS)),
    }


def concurrent_versions(channel: grpc.Channel) -> float:
    """CALLERS threads, ROUNDS Version calls each, released together:
    prints ops/s and the p50 of a call under that load; returns ops/s."""
    stub = api_pb2_grpc.RuntimeServiceStub(channel)
    for _ in range(20):
        stub.Version(api_pb2.VersionRequest())
    every, wall = time_concurrent(lambda: stub.Version(api_pb2.VersionRequest()),
                                  CALLERS, ROUNDS)
    summarize(f"Version, {CALLERS} callers", every)
    ops = len(every) / wall
    print(f"  {CALLERS} callers x {ROUNDS} Version: {ops:8.1f} ops/s")
    return ops


def run() -> int:
    with tempfile.TemporaryDirectory(prefix="crn-bench-") as tmp:
        daemon = Daemon(Path(tmp))
        started = time.perf_counter()
        daemon.start()
        elapsed_ms = (time.perf_counter() - started) * 1000
        print(f"  start-up to first answer          {elapsed_ms:8.1f} ms")
        try:
            print("crio-native:")
            ours = round_trips(daemon.channel)
            if ROUNDS > 0:
                concurrent_versions(daemon.channel)
        finally:
            daemon.stop()
    for peer, path in PEER_SOCKETS.items():
        if not os.path.exists(path):
            print(f"{peer}: skipped, no socket at {path} on this host")
            continue
        print(f"{peer}:")
        with grpc.insecure_channel(f"unix:{path}") as channel:
            theirs = round_trips(channel)
        for rpc in ours:
            ratio(f"{rpc} crio-native/{peer}", ours[rpc], theirs[rpc])
    return 0


BENCHMARK = ("cri_rpc", "daemon start-up and CRI Version/Status round trips", run)
