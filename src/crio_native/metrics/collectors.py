"""The metrics the daemon keeps, in a registry of their own (so a test or a
second daemon in one process starts clean), with prometheus-client.  Names
are CRI-O's with the `container_runtime_crio_native_` prefix; labels hold
method names and gRPC codes, never container or pod ids, so the series
stay few."""
from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client import gc_collector, platform_collector, process_collector

PREFIX = "container_runtime_crio_native"
# CRI calls run from a millisecond (ExecSync, status) to minutes (pulls)
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                   10.0, 30.0, 60.0, 300.0)
# a pull takes from a manifest GET (a present image's tag) to many minutes
PULL_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0,
                1800.0)
# a handler's create or start: a few ms (builtin) to seconds (a VM's boot)
LAUNCH_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                  10.0, 30.0)
LAUNCH_STEPS = ("create", "start")


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
        self.containers_started = Counter(
            f"{PREFIX}_containers_started", "Containers started (released to run their "
            "program), by runtime handler.", ["handler"], registry=r)
        self.containers_exited = Counter(
            f"{PREFIX}_containers_exited", "Container exits recorded, by reason "
            "(Completed, Error, OOMKilled, Unknown).", ["reason"], registry=r)
        self.containers_oom = Counter(
            f"{PREFIX}_containers_oom", "Containers ended by the OOM killer, by container "
            "name (the name in the pod spec, as CRI-O's containers_oom_total labels it).",
            ["name"], registry=r)

        self.image_pull_bytes = Counter(
            f"{PREFIX}_image_pulls_bytes", "Layer bytes downloaded by image pulls (compressed, "
            "as the registry sent them).", registry=r)
        self.image_pull_layers = Counter(
            f"{PREFIX}_image_pulls_layers", "Layers downloaded by image pulls (layers already "
            "present are not counted).", registry=r)
        self.image_pull_duration = Histogram(
            f"{PREFIX}_image_pulls_duration_seconds", "Time a successful image pull took, from "
            "resolving the name to the stored image.", buckets=PULL_BUCKETS, registry=r)
        self.image_pull_failures = Counter(
            f"{PREFIX}_image_pulls_failures", "Image pulls that failed, by reason.",
            ["reason"], registry=r)
        self.image_pulls_in_flight = Gauge(
            f"{PREFIX}_image_pulls_in_flight", "Image pulls in progress (a pull joined by "
            "several callers counts once).", registry=r)
        self.launch_latency = Histogram(
            f"{PREFIX}_handler_launch_seconds", "Time a runtime handler took to create a "
            "container (step=create: process made, held before exec) or to start it "
            "(step=start: released to exec), by handler.", ["handler", "step"],
            buckets=LAUNCH_BUCKETS, registry=r)
        self.step_duration = Histogram(
            f"{PREFIX}_operation_step_duration_seconds", "Time a step of a multi-step CRI "
            "call took (from the step before it, or the call's start), by step: the "
            "failpoints' names (crio_native/failpoints.py), e.g. sandbox.run.network_added.",
            ["step"], buckets=LAUNCH_BUCKETS, registry=r)
        self.stalled = Counter(
            f"{PREFIX}_resources_stalled_at_stage", "Retries of a RunPodSandbox or "
            "CreateContainer that timed out while the first call was still making the pod or "
            "container, by the last step that call had passed (CRI-O's "
            "resources_stalled_at_stage).", ["stage"], registry=r)

        self.policy_decisions = Counter(
            f"{PREFIX}_policy_decisions", "Policy rules ([policy] files) that fired on a "
            "CreateContainer, by rule and action (deny, audit; error: the rule could not be "
            "evaluated).", ["rule", "action"], registry=r)
        self.seccomp_denials = Counter(
            f"{PREFIX}_seccomp_denials", "Syscalls a container's seccomp profile denied or "
            "logged, seen by the audit stream (runtime.seccomp_audit), by syscall and container "
            "name (the name in the pod spec; the pod, id and image are in the log line).",
            ["syscall", "container"], registry=r)

    def observe_policy(self, rule: str, action: str) -> None:
        self.policy_decisions.labels(rule, action).inc()

    def observe_seccomp_denial(self, syscall: str, container: str) -> None:
        self.seccomp_denials.labels(syscall, container).inc()

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

    def observe_pull_started(self) -> None:
        self.image_pulls_in_flight.inc()

    def observe_pull_done(self, seconds: float, failure: str | None) -> None:
        """A pull ended: its time when it succeeded, its reason (one of
        metrics/pull_failure.REASONS) when it failed."""
        self.image_pulls_in_flight.dec()
        if failure is None:
            self.image_pull_duration.observe(seconds)
        else:
            self.image_pull_failures.labels(failure).inc()

    def observe_layer(self, size: int) -> None:
        """One layer downloaded, verified and stored."""
        self.image_pull_layers.inc()
        self.image_pull_bytes.inc(size)

    def observe_launch(self, handler: str, step: str, seconds: float) -> None:
        """A handler's create or start (`step`, one of LAUNCH_STEPS) that
        succeeded; a start is also counted as a container started."""
        self.launch_latency.labels(handler, step).observe(seconds)
        if step == "start":
            self.containers_started.labels(handler).inc()

    def observe_steps(self, durations: list[tuple[str, float]]) -> None:
        """A traced call's steps (steps.Trace.durations)."""
        for step, seconds in durations:
            self.step_duration.labels(step).observe(seconds)

    def observe_stalled(self, stage: str) -> None:
        self.stalled.labels(stage).inc()
