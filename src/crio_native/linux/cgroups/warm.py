"""Keep cgroup v1's attach path warm while containers are being made.

Every write to a v1 `cgroup.procs` takes the kernel's global
`cgroup_threadgroup_rwsem` for writing.  That percpu rwsem is guarded by
an rcu_sync: the first writer after a quiet spell waits a whole RCU grace
period (6-16 ms measured on the 2-core development host) for readers to
switch to the slow path; writers that follow within about one grace period
of the last one pass at once (0.15-0.2 ms).  A container launch makes such
a first write (the built-in launcher moves the child into its v1 groups;
runc does the same), so on a hybrid or v1 host each create pays the grace
period in the middle of its launch.

`AttachWarmer.held()` takes that wait off the create's path: while any
create holds it, a thread writes this daemon's own pid into the daemon's
own group of one v1 hierarchy (a move to where it already is: nothing
changes) every few ms, so the grace period is waited there, alongside the
rootfs, bundle and plan work, and the launch's own writes find the rwsem
in its fast state.  The cost while held: one short write every
INTERVAL_SECONDS, and forks on the host take the rwsem's slower reader path
(as they do during any v1 attach).  Where nothing is to gain (a pure v2
host: the built-in launcher clones straight into the group) or the write
is refused, it does nothing.

The runc handler's exec path holds the same warmer (`shared()`, one per
process) while `runc exec` starts: runc joins the container's groups by
writing `cgroup.procs` too.  An exec may run for long, so its hold ends
at `at_most` seconds even if the exec goes on.  The shared warmer's
thread outlives its last hold by SHARED_IDLE_LINGER_SECONDS, idle (no
writes, no fd open, named "cgroup-warmer-idle"), so that holds that come
one after another do not each start a thread."""
from __future__ import annotations

import logging
import os
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

from crio_native.linux.cgroups.hierarchy import (Hierarchy, host_hierarchies, own_cgroups,
                                                   pure_v2)

log = logging.getLogger(__name__)

# Shorter than the rcu_sync's linger after the last writer (one grace
# period, 6 ms and up here), so the state never drops back while held.
INTERVAL_SECONDS = 0.003
# How long the shared warmer's thread waits, idle (no writes), for the next
# hold before it ends: execs and creates that come back to back then find
# it running instead of each starting a thread and waiting for it to be
# scheduled (Thread.start; 0.1-2 ms on the 2-core host, in the middle of
# every ExecSync of the runc handler).
SHARED_IDLE_LINGER_SECONDS = 10.0
THREAD_NAME, IDLE_THREAD_NAME = "cgroup-warmer", "cgroup-warmer-idle"


def own_cgroup_procs(hierarchies: list[tuple[Hierarchy, str]] | None = None,
                     own: dict[str, str] | None = None) -> Path | None:
    """The cgroup.procs file of this process's own cgroup, in the v2
    hierarchy if there is one, else in the first v1 one that shows it (any
    hierarchy will do: the attach lock is one for all of them).  The runc
    handler's monitor warms it (--warm-cgroup): a monitor starts in our
    cgroups, so writing itself there moves nothing.  None when no mount
    shows our cgroup."""
    hierarchies = host_hierarchies() if hierarchies is None else hierarchies
    own = own_cgroups() if own is None else own
    for h, mount_root in sorted(hierarchies, key=lambda pair: pair[0].version != 2):
        d = h.dir_of(h.own_path(own), mount_root)
        if d is not None and (d / "cgroup.procs").exists():
            return d / "cgroup.procs"
    return None


def own_procs_file() -> Path | None:
    """`cgroup.procs` of this process's own group in one v1 controller
    hierarchy, for the daemon's warmer; None on a pure v2 host (the built-in
    launcher clones straight into the group) or where none is visible."""
    hierarchies = host_hierarchies()
    if pure_v2(hierarchies):
        return None
    v1 = [(h, root) for h, root in sorted(hierarchies, key=lambda pair: pair[0].name)
          if h.version == 1 and any(not c.startswith("name=") for c in h.controllers)]
    return own_cgroup_procs(v1, own_cgroups())


class AttachWarmer:
    def __init__(self, procs_file: Path | None = None, probe: bool = True,
                 idle_linger: float = 0.0):
        """`procs_file`: where to write (found on first use if None and
        `probe`); `probe=False` with no file: a warmer that does nothing.
        `idle_linger`: how long the thread, once no one holds the warmer,
        waits without writing for the next hold before it ends."""
        self._file = procs_file
        self._idle_linger = idle_linger
        self._probed = procs_file is not None or not probe
        self._lock = threading.Lock()
        self._holds: dict[int, float] = {}    # hold -> its end (monotonic; inf: none)
        self._next_hold = 0
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self.writes = 0                       # for tests and benchmarks

    def _target(self) -> Path | None:
        if not self._probed:
            self._probed = True
            try:
                self._file = own_procs_file()
            except OSError as e:
                log.debug("cgroup attach warmer off: %s", e)
                self._file = None
        return self._file

    @contextmanager
    def held(self, at_most: float | None = None) -> Iterator[None]:
        """Keep the attach path warm until the block ends, or for `at_most`
        seconds if that comes first."""
        release = self.hold(at_most)
        try:
            yield
        finally:
            release()

    def hold(self, at_most: float | None = None) -> Callable[[], None]:
        """Keep the attach path warm until the function returned is called
        (more calls do nothing), or for `at_most` seconds if that comes
        first."""
        with self._lock:
            target = self._target()
            if target is None:
                return _nothing
            self._next_hold += 1
            hold = self._next_hold
            self._holds[hold] = (time.monotonic() + at_most if at_most is not None
                                 else float("inf"))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, args=(target,),
                                                name=THREAD_NAME, daemon=True)
                self._thread.start()
            else:
                self._wake.set()          # an idle thread: back to writing

        def release() -> None:
            with self._lock:
                if self._holds.pop(hold, None) is not None and not self._holds:
                    self._wake.set()
        return release

    def _run(self, target: Path) -> None:
        pid = str(os.getpid()).encode()
        fd = -1           # open while it writes; an idle thread holds no fd
        try:
            while True:
                with self._lock:
                    self._wake.clear()
                    now = time.monotonic()
                    for hold in [h for h, end in self._holds.items() if end <= now]:
                        del self._holds[hold]
                    idle = not self._holds
                    if idle and not self._idle_linger:
                        self._thread = None
                        return
                if idle:
                    if fd >= 0:
                        os.close(fd)
                        fd = -1
                    # named apart while it writes nothing: a "cgroup-warmer"
                    # thread is one that keeps the attach path warm now
                    me = threading.current_thread()
                    me.name = IDLE_THREAD_NAME
                    woke = self._wake.wait(self._idle_linger)
                    me.name = THREAD_NAME
                    if woke:
                        continue              # a new hold (or a release: looked at again)
                    with self._lock:
                        if self._holds or self._wake.is_set():
                            continue
                        self._thread = None
                        return
                try:
                    if fd < 0:
                        fd = os.open(target, os.O_WRONLY | os.O_CLOEXEC)
                    os.write(fd, pid)
                except OSError as e:
                    self._give_up(target, e)
                    return
                self.writes += 1
                self._wake.wait(INTERVAL_SECONDS)
        finally:
            if fd >= 0:
                os.close(fd)

    def _give_up(self, target: Path, error: OSError) -> None:
        """The write is refused here (a read-only or delegated cgroupfs):
        off for good, the creates go on as before."""
        log.info("cgroup attach warmer off: cannot write our pid to %s: %s", target, error)
        with self._lock:
            self._file = None
            self._thread = None
            self._holds.clear()
            self._wake.clear()


def _nothing() -> None:
    pass


_shared: AttachWarmer | None = None
_shared_lock = threading.Lock()


def shared() -> AttachWarmer:
    """The process's one warmer, held by the container manager's creates and
    the runc handler's execs alike: one thread however many hold it."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = AttachWarmer(idle_linger=SHARED_IDLE_LINGER_SECONDS)
        return _shared
