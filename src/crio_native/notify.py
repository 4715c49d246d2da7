"""Telling the service manager that started us how we are doing: systemd's
notification protocol (sd_notify(3)), for `Type=notify` units.

One datagram of newline-separated `KEY=value` lines to the AF_UNIX socket in
$NOTIFY_SOCKET (a path, or "@name" for the abstract namespace).  Written out
here rather than taken from systemd-python: its `daemon.notify()` reads
$NOTIFY_SOCKET on every call, so the variable would have to stay in the
daemon's environment, where every child inherits it: monitors, CNI plugins,
shims, and runc, which takes a NOTIFY_SOCKET as the container's own and makes
`runc start` wait for the container to send READY=1.  This notifier takes
the address once and removes it from the environment.  sd_notify(3) documents
the protocol as stable and meant to be reimplemented.

Not under systemd (no $NOTIFY_SOCKET) every call does nothing."""
from __future__ import annotations

import logging
import os
import socket
import time

from crio_native.logsetup import fields

log = logging.getLogger(__name__)

NOTIFY_SOCKET_ENV = "NOTIFY_SOCKET"


def socket_address(value: str) -> str | None:
    """The sendto() address for a $NOTIFY_SOCKET value; None for a kind of
    address this notifier does not speak (vsock, added in systemd 253)."""
    if value.startswith("@"):
        return "\0" + value[1:]
    if value.startswith("/"):
        return value
    return None


class ServiceNotifier:
    def __init__(self, address: str | None = None) -> None:
        self.address = address
        self._warned = False

    @classmethod
    def from_environment(cls) -> ServiceNotifier:
        """Take $NOTIFY_SOCKET out of the environment (children must not see it)."""
        value = os.environ.pop(NOTIFY_SOCKET_ENV, "")
        if not value:
            return cls(None)
        address = socket_address(value)
        if address is None:
            log.warning("unsupported NOTIFY_SOCKET address: no readiness notifications",
                        extra=fields(notify_socket=value))
        return cls(address)

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def send(self, *lines: str) -> bool:
        """One notification; True if it was delivered.  A failure is logged
        once and never raised: the service manager is told, not obeyed."""
        if self.address is None:
            return False
        message = "\n".join(lines).encode()
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as s:
                s.sendto(message, self.address)
            return True
        except OSError as e:
            if not self._warned:
                self._warned = True
                log.warning("cannot notify the service manager", extra=fields(
                    notify_socket=self.address.replace("\0", "@"), error=str(e)))
            return False

    def ready(self, status: str) -> bool:
        return self.send("READY=1", f"STATUS={status}")

    def reloading(self, status: str = "reloading the configuration") -> bool:
        # MONOTONIC_USEC lets Type=notify-reload (systemd 253+) match the
        # reload to the SIGHUP it sent; older systemd ignores it.
        usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        return self.send("RELOADING=1", f"MONOTONIC_USEC={usec}", f"STATUS={status}")

    def stopping(self, status: str = "shutting down") -> bool:
        return self.send("STOPPING=1", f"STATUS={status}")

    def status(self, status: str) -> bool:
        return self.send(f"STATUS={status}")
