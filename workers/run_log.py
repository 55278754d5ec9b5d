"""A run's header and events, published to Redis as they happen, for the run viewer (bot/runs.py).

The agent's trajectory writes each event to its JSONL file and hands the same object here
(`emit`); a background task appends them to the run's stream in order, so the agent never waits
on Redis. A Redis that fails costs the viewer events, never the job: failures are logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from pathlib import Path
from typing import Any

import structlog
from redis.asyncio import Redis

from bot.redaction import redact_value
from bot.redis_connection import reply
from bot.runs import (
    INDEX,
    MAX_EVENT_BYTES,
    MAX_EVENTS,
    REPO_INDEX,
    RunHeader,
    events_key,
    header_key,
)

log = structlog.get_logger("qwen_fix.run_log")

CUT_STRING = 16 * 1024
"""Characters kept of each long string of an event too large for the stream."""


class RunLog:
    """Publishes one run; `start` it, `emit` events, `update` its header, `close` it."""

    def __init__(self, redis: Redis, header: RunHeader, retention: float) -> None:
        self._redis = redis
        self.header = header
        self._retention = int(retention)
        self._queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        self._publisher: asyncio.Task[None] | None = None
        self.jsonl: Path | None = None
        """The run's trajectory file: the job's own events (`event`) are appended there too,
        so the file alone rebuilds the page (the agent's trajectory writes its own)."""

    @property
    def id(self) -> str:
        return self.header.id

    @classmethod
    async def start(cls, redis: Redis, header: RunHeader, retention: float) -> RunLog:
        run = cls(redis, header, retention)
        oldest = time.time() - retention
        try:
            async with redis.pipeline(transaction=False) as pipe:
                pipe.set(header_key(header.id), header.model_dump_json(), ex=run._retention)
                for index in (INDEX, REPO_INDEX + header.repository):
                    pipe.zadd(index, {header.id: header.started})
                    pipe.zremrangebyscore(index, "-inf", oldest)
                    pipe.expire(index, run._retention)
                await pipe.execute()
        except Exception:
            log.warning("run_log.unavailable", run=header.id, exc_info=True)
        run._publisher = asyncio.create_task(run._publish())
        return run

    def emit(self, event: dict[str, Any]) -> None:
        """Queue one event (already redacted by the trajectory) for the stream, in order."""
        self._queue.put_nowait(event)

    async def event(self, kind: str, **fields: Any) -> None:
        """An event of the job itself (the plan, tests run, the outcome), redacted here."""
        line = {"type": kind, "time": time.time(), **redact_value(fields)}
        self.emit(line)
        if self.jsonl is not None:
            try:
                with self.jsonl.open("a", encoding="utf-8") as out:
                    out.write(json.dumps(line, ensure_ascii=False, default=str) + "\n")
            except OSError:
                log.warning("run_log.jsonl_failed", run=self.id, exc_info=True)

    async def update(self, **fields: Any) -> None:
        self.header = self.header.model_copy(update=fields)
        try:
            await self._redis.set(
                header_key(self.id), self.header.model_dump_json(), ex=self._retention
            )
        except Exception:
            log.warning("run_log.header_failed", run=self.id, exc_info=True)

    async def close(self) -> None:
        """Publish what is queued, then stop."""
        if self._publisher is None:
            return
        self._queue.put_nowait(None)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(asyncio.shield(self._publisher), timeout=10)
        self._publisher.cancel()
        self._publisher = None

    async def _publish(self) -> None:
        key = events_key(self.id)
        while (event := await self._queue.get()) is not None:
            try:
                await reply(
                    self._redis.xadd(
                        key, {"event": _bounded(event)}, maxlen=MAX_EVENTS, approximate=True
                    )
                )
                await self._redis.expire(key, self._retention)
            except Exception:
                log.warning("run_log.event_failed", run=self.id, exc_info=True)


def _bounded(event: dict[str, Any]) -> str:
    """The event as JSON of at most about MAX_EVENT_BYTES: long strings are cut when needed."""
    text = json.dumps(event, ensure_ascii=False, default=str)
    if len(text.encode()) <= MAX_EVENT_BYTES:
        return text
    return json.dumps(_cut(event), ensure_ascii=False, default=str)


def _cut(value: Any) -> Any:
    if isinstance(value, str) and len(value) > CUT_STRING:
        half = CUT_STRING // 2
        return f"{value[:half]}\n… {len(value) - CUT_STRING:,} characters cut …\n{value[-half:]}"
    if isinstance(value, dict):
        return {key: _cut(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_cut(item) for item in value]
    return value


class RunLogs:
    """Starts the run log of each job's agent run; one per worker."""

    def __init__(self, redis: Redis, retention: float, public_url: str | None = None) -> None:
        self._redis = redis
        self.retention = retention
        self.public_url = public_url.rstrip("/") if public_url else None

    async def start(self, header: RunHeader) -> RunLog:
        return await RunLog.start(self._redis, header, self.retention)

    def url(self, run_id: str) -> str | None:
        """The run's page, when the operator said where the app is reachable (PUBLIC_URL)."""
        return f"{self.public_url}/runs/{run_id}" if self.public_url else None
