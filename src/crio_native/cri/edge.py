"""The one wrapper between gRPC and the daemon.

Every CRI method is registered here from the service descriptor, so an RPC the
daemon does not implement yet answers UNIMPLEMENTED naming itself.  Every
request first passes request_fields.check_request (enum values, NUL bytes),
so no RPC sees a value protobuf lets through but nothing can use.  Typed
errors map to a gRPC code by their kind (STATUS_CODES, the only place kinds
meet gRPC); anything else becomes INTERNAL with the traceback logged.  At
debug level each call logs method, duration and code."""
from __future__ import annotations

import logging
import time
from typing import Any, Callable, Iterator

from crio_native._proto import api_pb2
from crio_native.cri.request_fields import check_request
from crio_native.cri.wire import Call, Method, Service, StatusCode
from crio_native import steps, tracing
from crio_native.errors import CrioNativeError, DeadlineExceeded, ErrorKind, Unimplemented
from crio_native.logsetup import fields
from crio_native.metrics import hooks

log = logging.getLogger("crio_native.cri")

Handler = Callable[[Any, Call], Any]

STATUS_CODES: dict[ErrorKind, StatusCode] = {
    ErrorKind.NOT_FOUND: StatusCode.NOT_FOUND,
    ErrorKind.ALREADY_EXISTS: StatusCode.ALREADY_EXISTS,
    ErrorKind.INVALID_ARGUMENT: StatusCode.INVALID_ARGUMENT,
    ErrorKind.FAILED_PRECONDITION: StatusCode.FAILED_PRECONDITION,
    ErrorKind.RESOURCE_EXHAUSTED: StatusCode.RESOURCE_EXHAUSTED,
    ErrorKind.DEADLINE_EXCEEDED: StatusCode.DEADLINE_EXCEEDED,
    ErrorKind.UNAVAILABLE: StatusCode.UNAVAILABLE,
    ErrorKind.UNIMPLEMENTED: StatusCode.UNIMPLEMENTED,
    ErrorKind.UNAUTHENTICATED: StatusCode.UNAUTHENTICATED,
    ErrorKind.CANCELLED: StatusCode.CANCELLED,
    ErrorKind.INTERNAL: StatusCode.INTERNAL,
}


def status_code_of(exc: BaseException) -> StatusCode:
    """The gRPC code the edge answers `exc` with: its kind's code for our
    typed errors, INTERNAL for anything else."""
    if isinstance(exc, CrioNativeError):
        return STATUS_CODES[exc.kind]
    return StatusCode.INTERNAL


def service_handler(service_name: str, impls: dict[str, Handler]) -> Service:
    """The server's handlers (cri/wire) for every method of runtime.v1.<service_name>."""
    service = api_pb2.DESCRIPTOR.services_by_name[service_name]
    known = {m.name for m in service.methods}
    stray = set(impls) - known
    if stray:
        raise ValueError(f"{service_name} has no methods {sorted(stray)}")
    handlers = {}
    for method in service.methods:
        if method.client_streaming:
            raise ValueError(f"{service_name}.{method.name}: client streaming is not in CRI")
        request_cls = getattr(api_pb2, method.input_type.name)
        response_cls = getattr(api_pb2, method.output_type.name)
        rpc = f"{service_name}.{method.name}"
        impl = impls.get(method.name)
        tracer = tracing.current   # wrapped only when on: off costs no test per call
        if method.server_streaming:
            stream = _streaming(rpc, impl)
            behavior = stream if tracer is None else tracer.wrap_streaming(rpc, stream)
        else:
            unary = _unary(rpc, impl)
            behavior = unary if tracer is None else tracer.wrap_unary(rpc, unary)
        handlers[method.name] = Method(
            deserialize=request_cls.FromString, serialize=response_cls.SerializeToString,
            behavior=behavior, streaming=method.server_streaming)
    return Service(service.full_name, handlers)


def _status_of(rpc: str, exc: BaseException) -> tuple[StatusCode, str]:
    if isinstance(exc, CrioNativeError):
        return status_code_of(exc), str(exc)
    log.error("unexpected error", exc_info=exc, extra=fields(method=rpc))
    return StatusCode.INTERNAL, f"{rpc}: internal error: {type(exc).__name__}: {exc}"


def _log_call(rpc: str, started: float, code: StatusCode, message: str = "") -> None:
    metrics = hooks.current
    if metrics is not None:
        metrics.observe_call(rpc, time.monotonic() - started, code.name)
    if log.isEnabledFor(logging.DEBUG):
        extra = dict(method=rpc, duration_ms=round((time.monotonic() - started) * 1000, 3),
                     code=code.name)
        if message:
            extra["error"] = message
        log.debug("rpc", extra={"fields": extra})


def _method_of(rpc: str) -> str:
    """"RunPodSandbox" of "RuntimeService.RunPodSandbox": errors name the
    method as the RPC modules do."""
    return rpc.rpartition(".")[2]


def _not_implemented(rpc: str) -> Unimplemented:
    return Unimplemented(f"{rpc} is not implemented by crio-native yet")


def _trace_key(method: str, request: Any) -> str | None:
    """What a traced call makes or acts on (steps.py), so that a retry of a
    RunPodSandbox or CreateContainer finds the first call; None: untraced."""
    if method == "RunPodSandbox":
        m = request.config.metadata
        return f"{m.namespace}/{m.name}/{m.uid}/{m.attempt}"
    if method == "CreateContainer":
        m = request.config.metadata
        return f"{request.pod_sandbox_id}/{m.name}/{m.attempt}"
    if method in ("StartContainer", "StopContainer", "RemoveContainer"):
        return str(request.container_id)
    if method in ("StopPodSandbox", "RemovePodSandbox"):
        return str(request.pod_sandbox_id)
    return None


def _traced_call(rpc: str, impl: Handler, request: Any, context: Call,
                 key: str) -> Any:
    """impl(), with its steps traced: their durations go to the metrics; a
    retry that timed out waiting for the first call says where that one is."""
    with steps.tracing(rpc, key, context.time_remaining()) as trace:
        try:
            return impl(request, context)
        except DeadlineExceeded as e:
            first = steps.in_progress(rpc, key, but=trace)
            if first is None:
                raise
            stage = first.last()[0]
            metrics = hooks.current
            if metrics is not None:
                metrics.observe_stalled(stage)
            raise DeadlineExceeded(f"{e}; {steps.stalled_note(first)}") from e
        finally:
            metrics = hooks.current
            if metrics is not None and trace.steps:
                metrics.observe_steps(trace.durations())
            if tracing.current is not None:
                tracing.current.record_steps(trace)


def _unary(rpc: str, impl: Handler | None) -> Handler:
    method = _method_of(rpc)

    def behavior(request: Any, context: Call) -> Any:
        started = time.monotonic()
        try:
            if impl is None:
                raise _not_implemented(rpc)
            check_request(method, request)
            key = _trace_key(method, request)
            if key is None:
                response = impl(request, context)
            else:
                response = _traced_call(rpc, impl, request, context, key)
        except Exception as exc:  # noqa: BLE001 - the edge is where all errors end
            code, message = _status_of(rpc, exc)
        else:
            _log_call(rpc, started, StatusCode.OK)
            return response
        _log_call(rpc, started, code, message)
        context.abort(code, message)

    return behavior


def _streaming(rpc: str, impl: Handler | None) -> Callable[..., Iterator[Any]]:
    def behavior(request: Any, context: Call) -> Iterator[Any]:
        started = time.monotonic()
        try:
            if impl is None:
                raise _not_implemented(rpc)
            check_request(_method_of(rpc), request)
            yield from impl(request, context)
        except Exception as exc:  # noqa: BLE001
            code, message = _status_of(rpc, exc)
        else:
            _log_call(rpc, started, StatusCode.OK)
            return
        _log_call(rpc, started, code, message)
        context.abort(code, message)

    return behavior
