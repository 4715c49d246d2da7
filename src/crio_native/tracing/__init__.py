"""Where the rest of the daemon reports to tracing: `current` is the running
daemon's tracer (tracing/otel.py, OpenTelemetry), or None while tracing is
off ([tracing] enable_tracing = false, the default).

Off costs nothing: this module imports nothing of OpenTelemetry, the gRPC
edge wraps its handlers only when a tracer is installed before the server is
built, and every other hook (image pull, layer fetch, CNI) is one test of
`current`.  docs/tracing.md says which spans there are."""
from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from typing import TYPE_CHECKING, Any, Callable, TypeVar

if TYPE_CHECKING:
    from crio_native.config.sections import TracingConfig
    from crio_native.tracing.otel import Tracer

current: "Tracer | None" = None

F = TypeVar("F", bound=Callable[..., Any])


def install(tracer: "Tracer | None") -> None:
    global current
    current = tracer


def start(config: "TracingConfig") -> "Tracer | None":
    """Install a tracer for `config` (OpenTelemetry is imported only here,
    and only when tracing is on); returns it, or None when off."""
    if not config.enable_tracing:
        return None
    from crio_native.tracing.otel import Tracer
    tracer = Tracer(config)
    install(tracer)
    return tracer


def stop() -> None:
    """Flush what is still queued to the collector and uninstall."""
    tracer = current
    install(None)
    if tracer is not None:
        tracer.shutdown()


def span(name: str, **attributes: Any) -> AbstractContextManager[Any]:
    """A child span of the current one while tracing is on; nothing when off."""
    tracer = current
    if tracer is None:
        return nullcontext()
    return tracer.span(name, attributes)


def in_context(fn: F) -> F:
    """`fn` bound to the caller's trace context, for a call made in another
    thread (a download pool): its spans then nest under the caller's."""
    tracer = current
    if tracer is None:
        return fn
    return tracer.in_context(fn)
