"""The write pacing that keeps the app under GitHub's content-creation limit."""

from __future__ import annotations

import time

import httpx

from bot.throttle import WriteThrottler


def test_the_window_admits_limit_writes_then_asks_to_wait_for_the_oldest() -> None:
    throttler = WriteThrottler(limit=3, window=60.0)
    for start in (0.0, 1.0, 2.0):
        assert throttler.delay(start) == 0.0
        throttler._starts.append(start)
    assert throttler.delay(10.0) == 50.0
    assert throttler.delay(60.0) == 0.0  # the write at 0.0 left the window


async def test_reads_are_never_paced_and_writes_are() -> None:
    throttler = WriteThrottler(limit=2, window=0.3)
    read = httpx.Request("GET", "http://gh/api/v3/repos/o/r")
    write = httpx.Request("POST", "http://gh/api/v3/repos/o/r/issues/1/comments")
    started = time.monotonic()
    for _ in range(10):
        async with throttler.async_acquire(read):
            pass
    assert not throttler._starts  # reads take no place in the window
    for _ in range(3):
        async with throttler.async_acquire(write):
            pass
    # The third write had to wait for the first to leave the 0.3 s window.
    assert time.monotonic() - started >= 0.29
