"""Runs in Redis: what the run viewer shows, written by workers on any host, read by the receiver.

One run is one agent run of a job. Each has an opaque random id (the only thing a page's path
carries), a header (repository, issue or pull request, trigger, who asked, mode, state, totals)
and a stream of events: the same objects as the lines of the run's trajectory JSONL on the
worker's disk (`{"type": …, "time": …, …}`), so a page can be rebuilt from either. Both live
for RUN_RETENTION_DAYS; the stream keeps at most MAX_EVENTS events.

This module is the contract (key names, the header's fields) and the reader; workers/run_log.py
writes. Everything written here went through bot/redaction.py first.
"""

from __future__ import annotations

import json
import re
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Any, Literal

from pydantic import BaseModel, Field
from redis.asyncio import Redis

from bot.redis_connection import reply

PREFIX = "qwen-fix:run:"
INDEX = "qwen-fix:runs"
"""Sorted set of run ids by start time, newest last."""
REPO_INDEX = "qwen-fix:runs:repo:"
"""…plus `owner/name`: the same, per repository."""
MAX_EVENTS = 5_000
"""Events kept per run (Redis trims the oldest beyond, approximately)."""
MAX_EVENT_BYTES = 256 * 1024
"""Longest JSON of one event in the stream; longer strings in it are cut (the JSONL keeps all)."""
RUN_ID = re.compile(r"[0-9a-f]{32}")

State = Literal["queued", "running", "done", "failed", "stopped"]


class RunHeader(BaseModel):
    """What the run list shows of one run, updated as it goes."""

    id: str
    job_id: str
    kind: Literal["issue", "follow_up", "ci_fix"]
    repository: str
    number: int
    trigger: str = Field(description="label, comment, review, ci or request")
    requested_by: str
    mode: str = "fix"
    state: State = "running"
    headline: str = ""
    started: float = Field(default_factory=time.time)
    ended: float | None = None
    steps: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float | None = None
    pr_url: str | None = None

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    @property
    def seconds(self) -> float:
        return (self.ended or time.time()) - self.started


def new_run_id() -> str:
    return secrets.token_hex(16)


def header_key(run_id: str) -> str:
    return f"{PREFIX}{run_id}"


def events_key(run_id: str) -> str:
    return f"{PREFIX}{run_id}:events"


class RunStore:
    """Reads runs: the newest first, one header, a stream of events from a point on."""

    def __init__(self, redis: Redis) -> None:
        self._redis = redis

    async def recent(
        self,
        *,
        repository: str | None = None,
        state: str | None = None,
        before: float | None = None,
        limit: int = 25,
        allowed: Callable[[RunHeader], Awaitable[bool]] | None = None,
    ) -> list[RunHeader]:
        """Runs started before `before`, newest first; of `repository`, in `state`, and only
        those `allowed` says the viewer may see."""
        index = REPO_INDEX + repository if repository else INDEX
        upper = f"({before}" if before is not None else "+inf"
        found: list[RunHeader] = []
        offset = 0
        while len(found) < limit:
            ids = await reply(
                self._redis.zrevrangebyscore(index, upper, "-inf", start=offset, num=limit * 2)
            )
            if not ids:
                break
            offset += len(ids)
            for header in await self._headers([_text(i) for i in ids]):
                if state and header.state != state:
                    continue
                if allowed is not None and not await allowed(header):
                    continue
                found.append(header)
        return found[:limit]

    async def header(self, run_id: str) -> RunHeader | None:
        if not RUN_ID.fullmatch(run_id):
            return None
        found = await self._headers([run_id])
        return found[0] if found else None

    async def _headers(self, run_ids: list[str]) -> list[RunHeader]:
        if not run_ids:
            return []
        values = await reply(self._redis.mget([header_key(i) for i in run_ids]))
        return [RunHeader.model_validate_json(v) for v in values if v]

    async def events(
        self, run_id: str, after: str = "0-0", *, count: int = MAX_EVENTS, block: int | None = None
    ) -> list[tuple[str, dict[str, Any]]]:
        """Events after the stream id `after`, oldest first, as (stream id, event); with `block`
        (milliseconds), waits that long for the first one."""
        key = events_key(run_id)
        if block is None:
            entries = await reply(self._redis.xrange(key, f"({after}", "+", count=count))
        else:
            answer = await reply(self._redis.xread({key: after}, count=count, block=block))
            entries = answer[0][1] if answer else []
        return [(_text(entry_id), json.loads(fields[b"event"])) for entry_id, fields in entries]


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
