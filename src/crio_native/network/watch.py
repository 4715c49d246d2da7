"""Which CNI network config is in force, kept current by inotify instead of a
directory scan per Status call.

One inotify instance watches the network directory (or, while it does not
exist, its nearest existing ancestor, for the directory's creation).  The
cached answer is refreshed when events are queued: by a background thread as
they arrive (so changes are logged when they happen), and by every reader,
which drains the queue without blocking before answering.  Because the kernel
queues an event before the write() or rename() that caused it returns, a
reader never sees an answer older than the file system it could observe.

NetworkReady is this answer, and, for a config of CNI 1.1.0 or later, the
plugins' STATUS verdict (re-asked at most every STATUS_TTL_SECONDS)."""
from __future__ import annotations

import logging
import os
import select
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from crio_native.logsetup import fields
from crio_native.network import inotify
from crio_native.network.cni_config import (NetworkConfigFile, NoNetworkConfig,
                                            find_network_config, version_at_least)

log = logging.getLogger(__name__)

STATUS_TTL_SECONDS = 5.0
STATUS_MIN_VERSION = "1.1.0"   # CNI STATUS and GC came with spec 1.1.0

# Anything that can change which config is first and valid: a file made,
# written, renamed, removed, re-permissioned; the directory itself going away.
DIR_EVENTS = (inotify.IN_CREATE | inotify.IN_DELETE | inotify.IN_MODIFY | inotify.IN_CLOSE_WRITE
              | inotify.IN_MOVED_FROM | inotify.IN_MOVED_TO | inotify.IN_ATTRIB
              | inotify.IN_DELETE_SELF | inotify.IN_MOVE_SELF | inotify.IN_ONLYDIR)
# On an ancestor while the directory is missing: only its (next component's) creation.
ANCESTOR_EVENTS = inotify.IN_CREATE | inotify.IN_MOVED_TO | inotify.IN_ONLYDIR


@dataclass(frozen=True)
class NetworkState:
    config: NetworkConfigFile | None
    problem: str = ""   # why there is no config, when there is none

    @property
    def ready(self) -> bool:
        return self.config is not None


class NetworkConfigWatcher:
    def __init__(self, network_dir: str, wanted_name: str = "",
                 status_probe: Callable[[NetworkConfigFile], None] | None = None):
        """`status_probe` runs CNI STATUS for a config and raises if the
        network is not ready; it is only called for configs of CNI >= 1.1.0."""
        self.network_dir = network_dir
        self.wanted_name = wanted_name
        self._probe = status_probe
        self._lock = threading.Lock()
        self._inotify: inotify.Inotify | None = None
        self._wake = -1
        self._thread: threading.Thread | None = None
        self._state: NetworkState | None = None
        self._dir_wd: int | None = None
        self._ancestor_wds: set[int] = set()
        self._status: tuple[NetworkState, float, str] | None = None  # (for, when, problem)

    # ---- life --------------------------------------------------------------------

    def start(self) -> "NetworkConfigWatcher":
        self._inotify = inotify.Inotify()
        self._wake = os.eventfd(0, os.EFD_CLOEXEC)
        with self._lock:
            self._refresh(force=True)
        self._thread = threading.Thread(target=self._run, name="cni-config-watch", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is not None:
            os.eventfd_write(self._wake, 1)
            self._thread.join()
            self._thread = None
        with self._lock:
            if self._inotify is not None:
                self._inotify.close()
                self._inotify = None
            if self._wake >= 0:
                os.close(self._wake)
                self._wake = -1
            self._dir_wd, self._ancestor_wds = None, set()

    @property
    def watching(self) -> bool:
        return self._inotify is not None

    # ---- answers -------------------------------------------------------------------

    def current(self) -> NetworkState:
        """The config in force now (a scan per call while not started)."""
        with self._lock:
            return self._refresh()

    def readiness(self) -> tuple[bool, str]:
        """(NetworkReady, why not)."""
        state = self.current()
        if not state.ready or state.config is None:
            return False, state.problem
        if self._probe is None or not version_at_least(state.config.cni_version,
                                                        STATUS_MIN_VERSION):
            return True, ""
        with self._lock:
            cached = self._status
        now = time.monotonic()
        if cached is not None and cached[0] == state and now - cached[1] < STATUS_TTL_SECONDS:
            problem = cached[2]
        else:
            problem = self._run_probe(state)
            with self._lock:
                self._status = (state, now, problem)
        return not problem, problem

    # ---- mechanics -------------------------------------------------------------------

    def _run_probe(self, state: NetworkState) -> str:
        probe, config = self._probe, state.config
        if probe is None or config is None:
            return ""
        try:
            probe(config)
        except Exception as e:  # noqa: BLE001 - any failure means "not ready", with its text
            return f"CNI STATUS of network {config.name!r}: {e}"
        return ""

    def _refresh(self, force: bool = False) -> NetworkState:
        if self._inotify is None:
            return self._scan()
        if self._inotify.read_events() or force or self._state is None:
            self._arm()
            new = self._scan()
            if new != self._state:
                log.info("CNI network config changed", extra=fields(
                    ready=new.ready, network=new.config.name if new.config else "",
                    file=str(new.config.path) if new.config else "", problem=new.problem))
            self._state = new
        return self._state

    def _scan(self) -> NetworkState:
        try:
            return NetworkState(find_network_config(self.network_dir, self.wanted_name))
        except NoNetworkConfig as e:
            return NetworkState(None, str(e))

    def _watch(self) -> inotify.Inotify:
        """The inotify instance of a started watcher."""
        if self._inotify is None:
            raise RuntimeError("the CNI config watcher is not started")
        return self._inotify

    def _arm(self) -> None:
        """Watch the directory; while it is missing, watch the nearest
        existing ancestor for its creation (each event re-arms)."""
        if self._try_watch_dir():
            return
        for ancestor in Path(self.network_dir).parents:
            try:
                self._ancestor_wds.add(self._watch().add_watch(str(ancestor), ANCESTOR_EVENTS))
                break
            except (FileNotFoundError, NotADirectoryError):
                continue
        self._try_watch_dir()   # it may have appeared meanwhile

    def _try_watch_dir(self) -> bool:
        previous = self._dir_wd
        try:
            self._dir_wd = self._watch().add_watch(self.network_dir, DIR_EVENTS)
        except (FileNotFoundError, NotADirectoryError):
            self._dir_wd = None
            return False
        stale = set(self._ancestor_wds)
        if previous is not None:
            stale.add(previous)   # a directory renamed away still has our watch
        for wd in stale - {self._dir_wd}:
            try:
                self._watch().rm_watch(wd)
            except OSError:
                pass   # already gone with its directory
        self._ancestor_wds = set()
        return True

    def _run(self) -> None:
        poller = select.poll()
        poller.register(self._watch().fileno(), select.POLLIN)
        poller.register(self._wake, select.POLLIN)
        while True:
            ready = {fd for fd, _ in poller.poll()}
            if self._wake in ready:
                return
            try:
                self.current()
            except Exception:  # noqa: BLE001 - keep watching; readers rescan on their own
                log.exception("CNI config watcher failed to refresh")
                time.sleep(1.0)
