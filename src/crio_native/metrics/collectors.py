"""The metrics the daemon keeps, in a registry of their own (so a test or a
second daemon in one process starts clean), with prometheus-client.  Names
are CRI-O's with the `container_runtime_crio_native_` prefix; labels hold
method names and gRPC codes, never container or pod ids, so the series
stay few."""
from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client import gc_collector, platform_collector, process_collector

PREFIX = "container_runtime_crio_native"
# CRI calls run from a millisecond (ExecSync, status) to minutes (pulls)
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                   10.0, 30.0, 60.0, 300.0)


class DaemonMetrics:
    """Every metric of one daemon."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        process_collector.ProcessCollector(registry=self.registry)
        platform_collector.PlatformCollector(registry=self.registry)
        gc_collector.GCCollector(registry=self.registry)
        r = self.registry
        self.operations = Counter(
            f"{PREFIX}_operations", "CRI calls answered, by method.",
            ["operation"], registry=r)
        self.operation_errors = Counter(
            f"{PREFIX}_operations_errors", "CRI calls answered with an error, by method and "
            "gRPC code.", ["operation", "code"], registry=r)
        self.operation_latency = Histogram(
            f"{PREFIX}_operations_latency_seconds", "Time to answer a CRI call, by method.",
            ["operation"], buckets=LATENCY_BUCKETS, registry=r)

        self.containers_created = Counter(
            f"{PREFIX}_containers_created", "Containers created, by runtime handler.",
            ["handler"], registry=r)
        self.containers_exited = Counter(
            f"{PREFIX}_containers_exited", "Container exits recorded, by reason "
            "(Completed, Error, OOMKilled, Unknown).", ["reason"], registry=r)
        self.containers_oom = Counter(
            f"{PREFIX}_containers_oom", "Containers ended by the OOM killer, by container "
            "name (the name in the pod spec, as CRI-O's containers_oom_total labels it).",
            ["name"], registry=r)

    def observe_created(self, handler: str) -> None:
        self.containers_created.labels(handler).inc()

    def observe_exit(self, reason: str, name: str) -> None:
        self.containers_exited.labels(reason or "Unknown").inc()
        if reason == "OOMKilled":
            self.containers_oom.labels(name).inc()

    def observe_call(self, method: str, seconds: float, code: str) -> None:
        """One answered CRI call (`code`: the gRPC status code's name)."""
        self.operations.labels(method).inc()
        self.operation_latency.labels(method).observe(seconds)
        if code != "OK":
            self.operation_errors.labels(method, code).inc()
