"""Which job works on which issue or pull request, in Redis: superseding, stopping, status.

Shared by the receiver (which starts and stops work) and the workers (which report on it).
"""

from __future__ import annotations

import json
import time
from typing import Any

from arq.constants import abort_jobs_ss
from redis.asyncio import Redis
from redis.asyncio.lock import Lock

PREFIX = "qwen-fix:work:"
KEEP = 30 * 24 * 3600
"""Seconds the record of the last job on an issue is kept, for `retry` and `status`."""


class WorkRegistry:
    """One active job per work key (`owner/name#number`); the last job's payload and status."""

    def __init__(self, redis: Redis) -> None:
        self._redis = redis

    async def start(
        self, key: str, job_id: str, job_name: str, payload: dict[str, Any]
    ) -> str | None:
        """Make `job_id` the active job of `key`; returns the job it replaced, if any."""
        previous = await self._redis.getset(PREFIX + key + ":active", job_id)
        record = {"job_id": job_id, "name": job_name, "payload": payload}
        await self._redis.set(PREFIX + key + ":last", json.dumps(record), ex=KEEP)
        old = previous.decode() if isinstance(previous, bytes) else previous
        return old if old and old != job_id else None

    async def active(self, key: str) -> str | None:
        value = await self._redis.get(PREFIX + key + ":active")
        return value.decode() if isinstance(value, bytes) else value

    async def last(self, key: str) -> dict[str, Any] | None:
        value = await self._redis.get(PREFIX + key + ":last")
        return json.loads(value) if value else None

    async def finish(self, key: str, job_id: str) -> None:
        """Forget `job_id` as the active job of `key`, unless another job replaced it already."""
        name = PREFIX + key + ":active"
        async with self._redis.pipeline(transaction=True) as pipe:
            await pipe.watch(name)
            current = await pipe.get(name)
            if (
                current is not None
                and (current.decode() if isinstance(current, bytes) else current) == job_id
            ):
                pipe.multi()
                pipe.delete(name)
                await pipe.execute()
            else:
                await pipe.unwatch()

    async def abort(self, job_id: str, reason: str) -> None:
        """Ask the worker running (or about to run) `job_id` to cancel it, saying why."""
        await self._redis.set(PREFIX + "reason:" + job_id, reason, ex=KEEP)
        await self._redis.zadd(abort_jobs_ss, {job_id: int(time.time() * 1000)})

    async def cancel(self, key: str, reason: str) -> str | None:
        """Abort the active job of `key`, if any; returns its id."""
        job_id = await self.active(key)
        if job_id is None:
            return None
        await self.abort(job_id, reason)
        await self.finish(key, job_id)
        return job_id

    async def abort_reason(self, job_id: str) -> str | None:
        value = await self._redis.get(PREFIX + "reason:" + job_id)
        return value.decode() if isinstance(value, bytes) else value

    def lock(self, key: str, timeout: float) -> Lock:
        """Serialises jobs on one pull request: two follow-ups must not push over each other."""
        return self._redis.lock(PREFIX + key + ":lock", timeout=timeout, blocking_timeout=timeout)

    async def report(self, key: str, status: dict[str, Any]) -> None:
        """The running job's latest progress (state, step, tokens, tracking comment)."""
        await self._redis.set(PREFIX + key + ":status", json.dumps(status), ex=KEEP)

    async def status(self, key: str) -> dict[str, Any] | None:
        value = await self._redis.get(PREFIX + key + ":status")
        return json.loads(value) if value else None
