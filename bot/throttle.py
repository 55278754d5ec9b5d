"""Pacing of GitHub writes: at most 80 content-creating requests a minute, as GitHub asks.

GitHub's secondary rate limits punish bursts of comments, reviews and pull requests; staying
under them is cheaper than backing off after a 403. Reads are not paced.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import AsyncGenerator, Generator
from contextlib import asynccontextmanager, contextmanager
from datetime import timedelta
from typing import Any

import httpx
from githubkit.exception import GitHubException, RateLimitExceeded, RequestFailed
from githubkit.retry import RetryChainDecision, RetryRateLimit, RetryServerError
from githubkit.throttling import BaseThrottler
from githubkit.typing import RetryOption

WRITE_METHODS = frozenset({"POST", "PATCH", "PUT", "DELETE"})
CONTENT_LIMIT = 80
WINDOW = 60.0

RETRY = RetryChainDecision(RetryRateLimit(max_retry=3), RetryServerError(max_retry=3))
"""Retry rate-limited requests (after GitHub's retry-after) and server errors, thrice each."""


class RetryBriefly:
    """One quick retry of a server error or a short rate-limit wait, for the receiver: GitHub
    gives a delivery 10 s for its answer, so a longer wait loses it; a failed delivery is
    answered 503 and asked for again once GitHub answers (bot/redelivery.py)."""

    def __init__(self, longest_wait: float = 2.0) -> None:
        self.longest_wait = longest_wait

    def __call__(self, exc: GitHubException, retry_count: int) -> RetryOption:
        if retry_count >= 1:
            return RetryOption(False)
        if isinstance(exc, RateLimitExceeded):
            wait = exc.retry_after.total_seconds()
            return RetryOption(wait <= self.longest_wait, exc.retry_after)
        if isinstance(exc, RequestFailed) and exc.response.status_code >= 500:
            return RetryOption(True, timedelta(seconds=1))
        return RetryOption(False)


RECEIVER_RETRY = RetryBriefly()


class WriteThrottler(BaseThrottler):
    """Lets at most `limit` write requests start in any `window` seconds; waits otherwise."""

    def __init__(self, limit: int = CONTENT_LIMIT, window: float = WINDOW) -> None:
        self.limit = limit
        self.window = window
        self._starts: deque[float] = deque()
        self._lock = asyncio.Lock()

    def delay(self, now: float) -> float:
        """Seconds to wait before the next write may start (pure, given the recorded starts)."""
        while self._starts and now - self._starts[0] >= self.window:
            self._starts.popleft()
        if len(self._starts) < self.limit:
            return 0.0
        return self.window - (now - self._starts[0])

    @contextmanager
    def acquire(self, request: httpx.Request) -> Generator[None, Any, Any]:
        # qwen-fix only uses the async client; a sync caller is not paced.
        yield

    @asynccontextmanager
    async def async_acquire(self, request: httpx.Request) -> AsyncGenerator[None, Any]:
        if request.method in WRITE_METHODS and not request.url.path.endswith("/graphql"):
            async with self._lock:
                # One sleep is enough: under the lock no other write can take the place.
                await asyncio.sleep(self.delay(time.monotonic()))
                self._starts.append(time.monotonic())
        yield
