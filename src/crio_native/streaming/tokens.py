"""Single-use tokens for the streaming URLs, as the kubelet's request cache:
the Exec, Attach and PortForward RPCs store the checked request under an
unguessable token and answer a URL carrying it; the streaming server takes
the request out with the token, once.  An unknown, used or expired token is
an HTTP 404."""
from __future__ import annotations

import os
import secrets
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Callable

from crio_native.errors import ResourceExhausted

EXEC = "exec"
ATTACH = "attach"
PORTFORWARD = "portforward"
KINDS = (EXEC, ATTACH, PORTFORWARD)

TOKEN_TTL = 60.0        # the kubelet's CacheTTL: one minute to open the URL
MAX_IN_FLIGHT = 1000    # the kubelet's MaxInFlight: tokens not yet used
# Read at start-up so tests can watch tokens expire without waiting a minute.
TOKEN_TTL_ENV = "CRIO_NATIVE_STREAM_TOKEN_TTL"
TOKEN_BYTES = 16        # 128 random bits, base64url (the kubelet uses 64)


def ttl_from_env() -> float:
    try:
        ttl = float(os.environ.get(TOKEN_TTL_ENV, TOKEN_TTL))
    except ValueError:
        return TOKEN_TTL
    return ttl if ttl > 0 else TOKEN_TTL


@dataclass(frozen=True)
class StreamRequest:
    """A checked Exec, Attach or PortForward request."""

    kind: str                       # EXEC, ATTACH or PORTFORWARD
    container_id: str = ""          # exec, attach
    cmd: tuple[str, ...] = ()       # exec
    tty: bool = False
    stdin: bool = False
    stdout: bool = False
    stderr: bool = False
    pod_id: str = ""                # portforward
    ports: tuple[int, ...] = field(default_factory=tuple)


class TokenCache:
    """token -> StreamRequest, each taken at most once, within `ttl` seconds."""

    def __init__(self, ttl: float = TOKEN_TTL, max_in_flight: int = MAX_IN_FLIGHT,
                 clock: Callable[[], float] = time.monotonic):
        self.ttl = ttl
        self.max_in_flight = max_in_flight
        self._clock = clock
        self._lock = threading.Lock()
        self._entries: OrderedDict[str, tuple[float, StreamRequest]] = OrderedDict()

    def insert(self, request: StreamRequest) -> str:
        with self._lock:
            self._expire()
            if len(self._entries) >= self.max_in_flight:
                raise ResourceExhausted(f"{request.kind}: {self.max_in_flight} streaming "
                                        "requests are waiting to be opened; try again later")
            token = secrets.token_urlsafe(TOKEN_BYTES)
            while token in self._entries:   # 2^64 tokens: never, but cheap to rule out
                token = secrets.token_urlsafe(TOKEN_BYTES)
            self._entries[token] = (self._clock() + self.ttl, request)
            return token

    def consume(self, kind: str, token: str) -> StreamRequest | None:
        """The request for `token` if it is of `kind`, unused and not expired;
        the token is spent either way."""
        with self._lock:
            self._expire()
            entry = self._entries.pop(token, None)
        if entry is None or entry[1].kind != kind:
            return None
        return entry[1]

    def __len__(self) -> int:
        with self._lock:
            self._expire()
            return len(self._entries)

    def _expire(self) -> None:
        now = self._clock()
        while self._entries:
            token, (deadline, _) = next(iter(self._entries.items()))
            if deadline > now:
                break
            del self._entries[token]
