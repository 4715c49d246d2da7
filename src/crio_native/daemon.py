"""The daemon: take ownership of the socket and state roots, serve CRI,
reload what can be reloaded on SIGHUP, and shut down cleanly on
SIGTERM/SIGINT.  Under systemd (Type=notify) it says READY=1 once the CRI
socket answers, RELOADING=1 around a reload and STOPPING=1 on the way out."""
from __future__ import annotations

import logging
import os
import signal
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from crio_native import __version__
from crio_native.config import Config, LoadedConfig
from crio_native.config.reload import apply_reload, describe, plan_reload
from crio_native.context import DaemonContext, containers_of, sandboxes_of
from crio_native.cri.server import bind_unix_socket, build_server
from crio_native.errors import ConfigError
from crio_native.locking import InstanceLock
from crio_native.logsetup import fields, reconfigure_logging
from crio_native.notify import ServiceNotifier
from crio_native.state import boot

if TYPE_CHECKING:
    from crio_native.streaming.endpoint import StreamingEndpoint

log = logging.getLogger(__name__)

SHUTDOWN_GRACE_SECONDS = 10.0
# How long the daemon waits for its own CRI socket to answer before READY=1.
READY_PROBE_SECONDS = 30.0
LOCK_NAME = "crio-native.lock"


def make_directory(path: str | Path, mode: int) -> None:
    """Create `path` (and parents) with exactly `mode`; an existing one is left as it is."""
    path = Path(path)
    if path.is_dir():
        return
    path.mkdir(parents=True, exist_ok=True)
    os.chmod(path, mode)


def prepare_directories(ctx: DaemonContext) -> None:
    cfg = ctx.config
    make_directory(Path(cfg.api.listen).parent, 0o755)
    make_directory(cfg.runroot, 0o755)
    make_directory(cfg.root, 0o711)


def instance_locks(ctx: DaemonContext) -> list[InstanceLock]:
    cfg = ctx.config
    paths = {Path(cfg.root) / LOCK_NAME, Path(cfg.runroot) / LOCK_NAME,
             Path(cfg.api.listen + ".lock")}
    return [InstanceLock(p) for p in sorted(paths)]


def remove_stale_socket(path: str) -> None:
    """Only called while holding the socket's lock, so whatever is there is ours."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def install_network(ctx: DaemonContext) -> None:
    """A node runs pods on the defaults: an empty CNI directory gets the
    packaged bridge network.  Failing to write it (a read-only /etc) is not
    fatal: NetworkReady then says what is missing."""
    from crio_native.network.default_network import install_default_network

    try:
        install_default_network(ctx.config.network)
    except OSError as e:
        log.warning("could not install the default CNI network", extra=fields(
            network_dir=ctx.config.network.network_dir, error=str(e)))


def has_records(config: Config) -> bool:
    root = Path(config.root)
    return any(any((root / kind).glob("*.json")) for kind in ("sandboxes", "containers"))


def start_services(ctx: DaemonContext) -> None:
    """Load records and finish or undo what a crash left half-done.  First
    say what kind of start this is (state/boot.py); once recovered, the
    version files say this version started."""
    from crio_native.attestation import Attestor
    from crio_native.container.manager import ContainerManager
    from crio_native.cri.image import images_of
    from crio_native.cri.runtime_info import load_pod_cidr
    from crio_native.runtime.registry import HandlerSet
    from crio_native.policy import PolicyGate
    from crio_native.sandbox.manager import SandboxManager

    # before anything is recovered: a policy that does not compile, or a
    # node key that cannot be read, stops the start (ConfigError)
    policy = PolicyGate.from_files(ctx.config.policy.files)
    attestor = Attestor.for_config(
        ctx.config, image_signature=lambda image_id: images_of(ctx).signature_of(image_id))
    state = boot.examine(ctx.config, has_records(ctx.config))
    boot.log_decision(state, ctx.config)
    load_pod_cidr(ctx)
    ctx.handlers = HandlerSet(ctx.config)
    ctx.sandboxes = SandboxManager(ctx.config, ctx.handlers)
    ctx.sandboxes.recover(state.rebooted)
    ctx.containers = ContainerManager(ctx.config, ctx.sandboxes, lambda: images_of(ctx),
                                      ctx.handlers, policy=policy, attestor=attestor)
    ctx.containers.recover(state.rebooted)
    boot.mark_started(ctx.config)


def start_streaming(ctx: DaemonContext) -> StreamingEndpoint:
    """The exec/attach/port-forward server on api.stream_address:stream_port:
    bound now, serving from the first Exec/Attach/PortForward on
    (streaming/endpoint.py)."""
    from crio_native.config.sections import parse_duration
    from crio_native.streaming.endpoint import StreamingEndpoint
    from crio_native.streaming.tokens import TokenCache, ttl_from_env

    api = ctx.config.api
    ctx.streaming = StreamingEndpoint(ctx.containers, ctx.sandboxes, address=api.stream_address,
                                      port=api.stream_port, tls_cert=api.stream_tls_cert,
                                      tls_key=api.stream_tls_key,
                                      tokens=TokenCache(ttl=ttl_from_env()),
                                      idle_timeout=parse_duration(api.stream_idle_timeout)
                                      ).start()
    return ctx.streaming


class Signals:
    """SIGTERM and SIGINT ask the daemon to stop, SIGHUP to reload.  The
    handlers only note the request and write a byte to a pipe that the main
    thread waits on; the main thread does the work, outside the handler
    (where a lock the interrupted code holds could deadlock it)."""

    def __init__(self) -> None:
        self._read, self._write = os.pipe2(os.O_CLOEXEC)
        os.set_blocking(self._write, False)
        self.stop: str | None = None    # the name of the signal that asked
        self.reload = False

    def install(self) -> None:
        # The kernel may deliver a signal to any gRPC thread: the main
        # thread, blocked in wait()'s read, would then run the Python handler
        # only once something else woke it.  The C-level handler's write to
        # the wakeup fd is that something.
        signal.set_wakeup_fd(self._write, warn_on_full_buffer=False)
        signal.signal(signal.SIGTERM, self._on_stop)
        signal.signal(signal.SIGINT, self._on_stop)
        signal.signal(signal.SIGHUP, self._on_reload)

    def _on_stop(self, signum: int, frame: object) -> None:
        self.stop = signal.Signals(signum).name
        self._wake()

    def _on_reload(self, signum: int, frame: object) -> None:
        self.reload = True
        self._wake()

    def _wake(self) -> None:
        try:
            os.write(self._write, b"!")
        except BlockingIOError:
            pass        # the pipe is full of wake-ups already

    def wait(self) -> None:
        """Until a signal came (at once if one came since the last call)."""
        if self.stop is None and not self.reload:
            os.read(self._read, 4096)

    def take_reload(self) -> bool:
        wanted, self.reload = self.reload, False
        return wanted

    def close(self) -> None:
        signal.set_wakeup_fd(-1)
        os.close(self._read)
        os.close(self._write)


def wait_until_answering(listen: str, timeout: float = READY_PROBE_SECONDS) -> None:
    """A Version call over the CRI socket: what a client gets once we say
    READY.  Made with h2 (cri/wire/probe.py): a grpc client would load
    grpcio into the daemon."""
    from crio_native.cri.wire.probe import call_version

    call_version(listen, timeout)


def reload_configuration(ctx: DaemonContext, load: Callable[[], LoadedConfig],
                         notifier: ServiceNotifier) -> None:
    """Read the configuration again; apply what can change at runtime and log
    exactly what was applied and what waits for a restart."""
    notifier.reloading()
    try:
        wanted = load()
    except ConfigError as e:
        log.error("configuration reload failed: the running configuration is kept",
                  extra=fields(error=str(e)))
        notifier.ready(f"serving CRI on {ctx.config.api.listen}; the last reload failed: {e}")
        return
    try:   # the policy files are read again even when the globs did not change
        from crio_native.policy import load_rules
        rules = load_rules(wanted.config.policy.files)
    except ConfigError as e:
        log.error("configuration reload failed: the running configuration is kept",
                  extra=fields(error=str(e)))
        notifier.ready(f"serving CRI on {ctx.config.api.listen}; the last reload failed: {e}")
        return
    plan = plan_reload(ctx.config, wanted.config)
    apply_reload(ctx.loaded, wanted, plan)
    if ctx.containers is not None and ctx.containers.policy is not None:
        ctx.containers.policy.replace(rules)
        log.info("policy reloaded", extra=fields(rules=len(rules)))
    reconfigure_logging(ctx.config.log_level, ctx.config.log_format)
    log.info("configuration reloaded", extra=fields(
        applied=describe(plan.applied), needs_restart=describe(plan.needs_restart),
        config_files=",".join(wanted.sources) or "none"))
    status = f"serving CRI on {ctx.config.api.listen}"
    if plan.needs_restart:
        keys = ", ".join(c.key for c in plan.needs_restart)
        status += f"; changed keys waiting for a restart: {keys}"
    notifier.ready(status)


def serve(loaded: LoadedConfig, reload_config: Callable[[], LoadedConfig] | None = None) -> int:
    """Run until signalled; returns the exit status.  `reload_config` reads
    the configuration again (SIGHUP); without it a SIGHUP only logs."""
    notifier = ServiceNotifier.from_environment()
    ctx = DaemonContext(loaded=loaded)
    listen = ctx.config.api.listen
    signals = Signals()
    signals.install()
    prepare_directories(ctx)
    with ExitStack() as undo:
        undo.callback(signals.close)
        for lock in instance_locks(ctx):
            lock.acquire()
            undo.callback(lock.release)
        remove_stale_socket(listen)
        install_network(ctx)        # before recovery's CNI GC and the watcher read the dir
        if ctx.config.metrics.enable_metrics:   # prometheus-client is loaded only then
            from crio_native.metrics.server import metrics_served
            undo.enter_context(metrics_served(ctx.config.metrics))
        if ctx.config.tracing.enable_tracing:   # OpenTelemetry is loaded only then
            from crio_native import tracing   # before build_server: the edge wraps then
            tracing.start(ctx.config.tracing)
            undo.callback(tracing.stop)
        notifier.status("recovering pods and containers")
        start_services(ctx)
        undo.callback(sandboxes_of(ctx).networks.start().stop)   # NetworkReady via inotify
        undo.callback(start_streaming(ctx).stop)
        server = build_server(ctx)
        bind_unix_socket(server, listen)
        undo.callback(remove_stale_socket, listen)
        server.start()
        os.chmod(listen, 0o660)
        if notifier.enabled:
            wait_until_answering(listen)
            notifier.ready(f"serving CRI on {listen}")
        log.info("crio-native started", extra=fields(
            version=__version__, listen=listen, root=ctx.config.root,
            runroot=ctx.config.runroot, config_files=",".join(loaded.sources) or "none"))
        while True:
            signals.wait()
            if signals.stop is not None:
                break
            if signals.take_reload():
                if reload_config is None:
                    log.warning("SIGHUP: this daemon was started without a way to reload")
                else:
                    reload_configuration(ctx, reload_config, notifier)
        log.info("shutting down", extra=fields(signal=signals.stop))
        notifier.stopping()
        containers_of(ctx).close()   # ends the GetContainerEvents streams
        server.stop(SHUTDOWN_GRACE_SECONDS)
        boot.mark_clean_shutdown(ctx.config)
    log.info("crio-native stopped")
    return 0
