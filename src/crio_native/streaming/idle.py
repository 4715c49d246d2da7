"""api.stream_idle_timeout: a session with no traffic in either direction
for that long is ended, as the kubelet's streaming server does (its
`StreamIdleTimeout`, 4 h by default).  The transports (websocket.py,
spdy_session.py) `touch` an `Activity` on every read from and write to the
client; `run_until_idle` cancels the session once it has been quiet for the
timeout.  Cancelling is the same teardown as the server stopping: an exec'd
process is killed and reaped, an attach connection or forwarded TCP
connection closed, and the client's connection closed (no status is sent,
as with the kubelet)."""
from __future__ import annotations

import asyncio
import time
from typing import Awaitable

NEVER = 0.0     # a timeout of 0 ("0" in the config): sessions never idle out


class Activity:
    """When the client's connection last carried data, either way."""

    __slots__ = ("last",)

    def __init__(self) -> None:
        self.last = time.monotonic()

    def touch(self) -> None:
        self.last = time.monotonic()


async def run_until_idle(session: Awaitable, activity: Activity, timeout: float) -> bool:
    """Run `session` to its end; True if it was cancelled because `activity`
    saw nothing for `timeout` seconds.  One timer per session, re-armed only
    when it fires, so traffic costs a timestamp and nothing more."""
    task = asyncio.ensure_future(session)
    try:
        if timeout <= NEVER:
            await task
            return False
        while True:
            left = activity.last + timeout - time.monotonic()
            if left <= 0:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
                return True
            done, _ = await asyncio.wait({task}, timeout=left)
            if done:
                task.result()           # its exception, if any
                return False
    finally:
        if not task.done():             # we were cancelled (the server stops)
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
