"""Notices containers ending on their own: one thread waits on a pidfd of
each container's monitor, which exits only after writing the exit file."""
from __future__ import annotations

import logging
import os
import select
import threading
from typing import Callable

from crio_native.logsetup import fields

log = logging.getLogger(__name__)


class ExitWatcher:
    def __init__(self, on_exit: Callable[[str], None]):
        self.on_exit = on_exit
        self.lock = threading.Lock()
        self.epoll = select.epoll()
        self.by_fd: dict[int, str] = {}
        self.wake_r, self.wake_w = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
        self.epoll.register(self.wake_r, select.EPOLLIN)
        self.stopping = False
        self.thread = threading.Thread(target=self._run, name="exit-watcher", daemon=True)
        self.thread.start()

    def watch(self, container_id: str, monitor_pid: int) -> None:
        """Call on_exit(container_id) once the monitor is gone (at once if it
        already is)."""
        try:
            fd = os.pidfd_open(monitor_pid)
        except ProcessLookupError:
            self.on_exit(container_id)
            return
        with self.lock:
            self.by_fd[fd] = container_id
            self.epoll.register(fd, select.EPOLLIN)

    def _run(self) -> None:
        while not self.stopping:
            for fd, _ in self.epoll.poll():
                if fd == self.wake_r:
                    continue
                with self.lock:
                    container_id = self.by_fd.pop(fd, None)
                    self.epoll.unregister(fd)
                os.close(fd)
                if container_id is None:
                    continue
                try:
                    self.on_exit(container_id)
                except Exception:  # noqa: BLE001 - the watcher must keep running
                    log.error("handling a container exit failed", exc_info=True,
                              extra=fields(id=container_id))

    def close(self) -> None:
        self.stopping = True
        os.write(self.wake_w, b"x")
        self.thread.join(timeout=5)
        with self.lock:
            for fd in self.by_fd:
                os.close(fd)
            self.by_fd.clear()
        self.epoll.close()
        os.close(self.wake_r)
        os.close(self.wake_w)
