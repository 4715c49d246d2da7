"""api.stream_idle_timeout: run_until_idle ends a session once its
connection has been quiet for the timeout, and only then."""
from __future__ import annotations

import asyncio
import time

import pytest

from crio_native.streaming.idle import Activity, run_until_idle
from crio_native.config.sections import parse_duration
from crio_native.streaming.server import DEFAULT_IDLE_TIMEOUT


def run(coro):
    return asyncio.run(coro)


def test_a_quiet_session_is_cancelled_after_the_timeout():
    cancelled = []

    async def session():
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            cancelled.append(True)
            raise

    async def main():
        began = time.monotonic()
        idle = await run_until_idle(session(), Activity(), 0.2)
        return idle, time.monotonic() - began

    idle, took = run(main())
    assert idle and cancelled == [True]
    assert 0.2 <= took < 1.0


def test_traffic_keeps_a_session_open():
    async def main():
        activity = Activity()

        async def session():
            for _ in range(8):            # 0.8 s of traffic every 0.1 s, timeout 0.3 s
                await asyncio.sleep(0.1)
                activity.touch()
            return "done"

        began = time.monotonic()
        idle = await run_until_idle(session(), activity, 0.3)
        return idle, time.monotonic() - began

    idle, took = run(main())
    assert not idle and took >= 0.8


def test_traffic_then_silence_times_out_from_the_last_traffic():
    async def main():
        activity = Activity()

        async def session():
            await asyncio.sleep(0.3)
            activity.touch()
            await asyncio.sleep(10)

        began = time.monotonic()
        idle = await run_until_idle(session(), activity, 0.4)
        return idle, time.monotonic() - began

    idle, took = run(main())
    assert idle and 0.7 <= took < 1.5


def test_zero_means_never():
    async def main():
        activity = Activity()
        activity.last -= 1000
        return await run_until_idle(asyncio.sleep(0.1), activity, 0.0)

    assert run(main()) is False


def test_the_session_error_is_raised():
    async def boom():
        raise ValueError("x")

    with pytest.raises(ValueError):
        run(run_until_idle(boom(), Activity(), 5))


def test_cancelling_the_caller_cancels_the_session():
    state = []

    async def session():
        try:
            await asyncio.sleep(10)
        finally:
            state.append("session ended")

    async def main():
        outer = asyncio.ensure_future(run_until_idle(session(), Activity(), 5))
        await asyncio.sleep(0.05)
        outer.cancel()
        with pytest.raises(asyncio.CancelledError):
            await outer

    run(main())
    assert state == ["session ended"]


@pytest.mark.parametrize("text, seconds", [("4h", 14400.0), ("1s", 1.0), ("1m30s", 90.0),
                                           ("250ms", 0.25), ("0", 0.0)])
def test_the_config_durations_the_daemon_passes(text, seconds):
    assert parse_duration(text) == seconds


def test_without_a_timeout_the_default_is_four_hours():
    assert DEFAULT_IDLE_TIMEOUT == 4 * 3600
