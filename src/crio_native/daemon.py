"""The daemon: take ownership of the socket and state roots, serve CRI, and
shut down cleanly on SIGTERM/SIGINT."""
from __future__ import annotations

import logging
import os
import signal
import threading
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING

from crio_native import __version__
from crio_native.config import LoadedConfig
from crio_native.context import DaemonContext, containers_of, sandboxes_of
from crio_native.cri.server import bind_unix_socket, build_server
from crio_native.locking import InstanceLock
from crio_native.logsetup import fields

if TYPE_CHECKING:
    from crio_native.streaming.server import StreamingServer

log = logging.getLogger(__name__)

SHUTDOWN_GRACE_SECONDS = 10.0
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


def start_services(ctx: DaemonContext) -> None:
    """Load records and finish or undo what a crash left half-done."""
    from crio_native.container.manager import ContainerManager
    from crio_native.cri.image import images_of
    from crio_native.cri.runtime_info import load_pod_cidr
    from crio_native.runtime.registry import HandlerSet
    from crio_native.sandbox.manager import SandboxManager

    load_pod_cidr(ctx)
    ctx.handlers = HandlerSet(ctx.config)
    ctx.sandboxes = SandboxManager(ctx.config, ctx.handlers)
    ctx.sandboxes.recover()
    ctx.containers = ContainerManager(ctx.config, ctx.sandboxes, lambda: images_of(ctx),
                                      ctx.handlers)
    ctx.containers.recover()


def start_streaming(ctx: DaemonContext) -> StreamingServer:
    """The exec/attach/port-forward server on api.stream_address:stream_port."""
    from crio_native.config.sections import parse_duration
    from crio_native.streaming.server import StreamingServer
    from crio_native.streaming.tokens import TokenCache, ttl_from_env

    api = ctx.config.api
    ctx.streaming = StreamingServer(ctx.containers, ctx.sandboxes, address=api.stream_address,
                                    port=api.stream_port, tls_cert=api.stream_tls_cert,
                                    tls_key=api.stream_tls_key,
                                    tokens=TokenCache(ttl=ttl_from_env()),
                                    idle_timeout=parse_duration(api.stream_idle_timeout)).start()
    return ctx.streaming


def install_signal_handlers(stop: threading.Event) -> None:
    def on_signal(signum, frame):
        log.info("shutting down", extra=fields(signal=signal.Signals(signum).name))
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)


def serve(loaded: LoadedConfig) -> int:
    """Run until signalled; returns the exit status."""
    ctx = DaemonContext(loaded=loaded)
    listen = ctx.config.api.listen
    stop = threading.Event()
    install_signal_handlers(stop)
    prepare_directories(ctx)
    with ExitStack() as undo:
        for lock in instance_locks(ctx):
            lock.acquire()
            undo.callback(lock.release)
        remove_stale_socket(listen)
        install_network(ctx)        # before recovery's CNI GC and the watcher read the dir
        start_services(ctx)
        undo.callback(sandboxes_of(ctx).networks.start().stop)   # NetworkReady via inotify
        undo.callback(start_streaming(ctx).stop)
        server = build_server(ctx)
        bind_unix_socket(server, listen)
        undo.callback(remove_stale_socket, listen)
        server.start()
        os.chmod(listen, 0o660)
        log.info("crio-native started", extra=fields(
            version=__version__, listen=listen, root=ctx.config.root,
            runroot=ctx.config.runroot, config_files=",".join(loaded.sources) or "none"))
        stop.wait()
        containers_of(ctx).close()   # ends the GetContainerEvents streams
        server.stop(SHUTDOWN_GRACE_SECONDS).wait()
    log.info("crio-native stopped")
    return 0
