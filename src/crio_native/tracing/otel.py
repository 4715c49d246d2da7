"""The OpenTelemetry tracer of a daemon with [tracing] enable_tracing = true.

Imported only then (tracing/__init__.py): the SDK and the OTLP exporter cost
start-up time and memory that a daemon with tracing off must not pay.

Spans (docs/tracing.md):
- one SERVER span per CRI call, named as gRPC names the method
  ("runtime.v1.RuntimeService/RunPodSandbox"), with the pod and container
  ids the request or the answer carries and the gRPC status code; its parent
  is the kubelet's span when the call's metadata carries a W3C
  `traceparent`, so the runtime's spans join the kubelet's trace;
- under the calls that pass named steps (steps.py: RunPodSandbox,
  CreateContainer, StartContainer, Stop/Remove...), one child span per step,
  from the previous step (or the call's start) to the step's boundary,
  named as the step (failpoints.CATALOGUE);
- live child spans from the code that does the slow work: `image.pull` and
  `image.layer` (download, verify and unpack of one layer), `cni.add` and
  `cni.del` (one per network)."""
from __future__ import annotations

import time
from contextlib import AbstractContextManager
from typing import Any, Callable, Iterator, TypeVar

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from opentelemetry.trace import SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from crio_native import __version__
from crio_native.config.sections import TracingConfig
from crio_native.cri.wire import Call, StatusCode as RpcCode
from crio_native.steps import Trace

SERVICE_NAME = "crio-native"
PACKAGE = "runtime.v1"
EXPORT_TIMEOUT_S = 5   # a collector that is down delays the daemon's stop at most this

F = TypeVar("F", bound=Callable[..., Any])

# request (and answer) fields that name what a call acts on -> span attribute
ID_FIELDS = {
    "pod_sandbox_id": "crio_native.pod_sandbox_id",
    "container_id": "crio_native.container_id",
}


def span_name(rpc: str) -> str:
    """"runtime.v1.RuntimeService/RunPodSandbox" of "RuntimeService.RunPodSandbox"."""
    service, _, method = rpc.rpartition(".")
    return f"{PACKAGE}.{service}/{method}"


def request_attributes(rpc: str, request: Any) -> dict[str, Any]:
    service, _, method = rpc.rpartition(".")
    attrs: dict[str, Any] = {"rpc.system": "grpc", "rpc.service": f"{PACKAGE}.{service}",
                             "rpc.method": method}
    attrs.update(_ids_of(request))
    if method == "RunPodSandbox":
        m = request.config.metadata
        attrs.update({"k8s.pod.name": m.name, "k8s.namespace.name": m.namespace,
                      "k8s.pod.uid": m.uid})
    elif method == "CreateContainer":
        attrs["k8s.container.name"] = request.config.metadata.name
    return attrs


def _ids_of(message: Any) -> dict[str, str]:
    fields = message.DESCRIPTOR.fields_by_name
    return {attr: getattr(message, name) for name, attr in ID_FIELDS.items()
            if name in fields and getattr(message, name)}


def _code_of(context: Call) -> RpcCode:
    code = context.code() if hasattr(context, "code") else None
    return code if isinstance(code, RpcCode) else RpcCode.UNKNOWN


def _finish(span: trace.Span, code: RpcCode, context: Call) -> None:
    span.set_attribute("rpc.grpc.status_code", int(code))
    if code is not RpcCode.OK:
        details = context.details() if hasattr(context, "details") else None
        if isinstance(details, bytes):
            details = details.decode(errors="replace")
        span.set_status(Status(StatusCode.ERROR, f"{code.name}: {details or ''}"))


class Tracer:
    def __init__(self, config: TracingConfig):
        rate = config.tracing_sampling_rate_per_million / 1_000_000
        self.provider = TracerProvider(
            resource=Resource.create({"service.name": SERVICE_NAME,
                                      "service.version": __version__}),
            sampler=ParentBased(TraceIdRatioBased(rate)))
        # the batch's delay and sizes follow the SDK's OTEL_BSP_* variables
        self.provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(
            endpoint=config.tracing_endpoint, insecure=True, timeout=EXPORT_TIMEOUT_S)))
        self.tracer = self.provider.get_tracer("crio_native", __version__)
        self.propagator = TraceContextTextMapPropagator()

    def shutdown(self) -> None:
        self.provider.shutdown()

    # ---- the gRPC edge ------------------------------------------------------

    def _parent(self, context: Call) -> otel_context.Context:
        """The kubelet's trace context from the call's metadata, or a new root."""
        carrier = {k: v for k, v in (context.invocation_metadata() or ())
                   if isinstance(v, str)}
        if "traceparent" not in carrier:
            return otel_context.Context()
        return self.propagator.extract(carrier)

    def wrap_unary(self, rpc: str, behavior: Callable[[Any, Call], Any]
                   ) -> Callable[[Any, Call], Any]:
        name = span_name(rpc)

        def traced(request: Any, context: Call) -> Any:
            with self.tracer.start_as_current_span(
                    name, context=self._parent(context), kind=SpanKind.SERVER,
                    record_exception=False, set_status_on_exception=False) as span:
                if span.is_recording():
                    span.set_attributes(request_attributes(rpc, request))
                try:
                    response = behavior(request, context)
                except BaseException:
                    _finish(span, _code_of(context), context)
                    raise
                if span.is_recording():
                    span.set_attributes(_ids_of(response))
                _finish(span, RpcCode.OK, context)
                return response

        return traced

    def wrap_streaming(self, rpc: str, behavior: Callable[..., Iterator[Any]]
                       ) -> Callable[..., Iterator[Any]]:
        name = span_name(rpc)

        def traced(request: Any, context: Call) -> Iterator[Any]:
            # not made current: the stream's generator may be resumed anywhere
            span = self.tracer.start_span(name, context=self._parent(context),
                                          kind=SpanKind.SERVER)
            if span.is_recording():
                span.set_attributes(request_attributes(rpc, request))
            code = RpcCode.OK
            try:
                yield from behavior(request, context)
            except GeneratorExit:
                code = RpcCode.CANCELLED
                raise
            except BaseException:
                code = _code_of(context)
                raise
            finally:
                _finish(span, code, context)
                span.end()

        return traced

    def record_steps(self, steps: Trace) -> None:
        """A child span of the current call's span per step it passed: steps
        have durations (a waterfall shows where a pod start spends its time),
        which span events, being instants, would not."""
        parent = trace.get_current_span()
        if not parent.is_recording() or not steps.steps:
            return
        offset = time.time_ns() - time.monotonic_ns()   # steps are on the monotonic clock
        ctx = trace.set_span_in_context(parent)
        before = steps.started
        for name, at in steps.steps:
            span = self.tracer.start_span(name, context=ctx,
                                          start_time=int(before * 1e9) + offset)
            span.end(end_time=int(at * 1e9) + offset)
            before = at

    # ---- the rest of the daemon ---------------------------------------------

    def span(self, name: str, attributes: dict[str, Any]) -> AbstractContextManager[Any]:
        return self.tracer.start_as_current_span(name, attributes=attributes)

    def in_context(self, fn: F) -> F:
        ctx = otel_context.get_current()

        def bound(*args: Any, **kwargs: Any) -> Any:
            token = otel_context.attach(ctx)
            try:
                return fn(*args, **kwargs)
            finally:
                otel_context.detach(token)

        return bound  # type: ignore[return-value]
