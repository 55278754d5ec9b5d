"""Worker liveness in Redis, so that the sandboxes and jobs of a crashed worker are found: its
sandboxes removed, its jobs run again (workers/crash_recovery.py).

Each worker beats every `interval` seconds into one sorted set, scored with the moment its beat
lapses (four intervals on, by Redis's clock). On each beat a worker removes the sandboxes of
known workers that stopped beating (and ended or expired ones). Workers of another deployment
sharing the Docker engine are not known to this Redis, so their sandboxes are left alone.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Sequence
from pathlib import Path
from typing import cast

import docker
import structlog
from redis.asyncio import Redis

from sandbox.reaper import reap_directories, reap_orphans
from workers.crash_recovery import release_jobs

log = structlog.get_logger("qwen_fix.liveness")

BEATS = "qwen-fix:worker-beats"
"""Sorted set: each known worker, scored with the moment (Redis's clock) its last beat lapses."""
BEATS_TO_LIVE = 4

# Redis's own clock, so hosts whose clocks disagree still agree on who is dead.
BEAT = """
local now = redis.call('TIME')
redis.call('ZADD', KEYS[1], tonumber(now[1]) + tonumber(now[2]) / 1e6 + tonumber(ARGV[2]), ARGV[1])
"""
LAPSED = """
local now = redis.call('TIME')
return redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', tonumber(now[1]) + tonumber(now[2]) / 1e6)
"""


async def beat(redis: Redis, worker_id: str, interval: float) -> None:
    """This worker lives for BEATS_TO_LIVE more intervals."""
    await cast(Awaitable[int], redis.eval(BEAT, 1, BEATS, worker_id, str(interval * BEATS_TO_LIVE)))


async def dead_workers(redis: Redis) -> set[str]:
    """Known workers whose beat has lapsed: a range of one sorted set, however many keys
    Redis holds (a scan of the keyspace took seconds at a million keys)."""
    lapsed = await cast(Awaitable[list[bytes]], redis.eval(LAPSED, 1, BEATS))
    return {_text(name) for name in lapsed}


async def forget(redis: Redis, workers: set[str]) -> None:
    """Their sandboxes and jobs are dealt with: drop them, so the set stays small."""
    await cast(Awaitable[int], redis.zrem(BEATS, *workers))


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


async def beat_and_reap(
    redis: Redis,
    client: docker.DockerClient,
    worker_id: str,
    interval: float,
    directories: Sequence[tuple[Path, str]] = (),
) -> None:
    """Run for the worker's lifetime. When workers die, their sandboxes go, and so do the
    leftover `directories` (root, glob) that no sandbox mounts any more; then their unfinished
    jobs are released to run again."""
    while True:
        try:
            await beat(redis, worker_id, interval)
            dead = await dead_workers(redis)
            if dead:
                removed = await asyncio.to_thread(reap_orphans, client, dead_workers=dead)
                for root, pattern in directories:
                    await asyncio.to_thread(reap_directories, client, root, pattern)
                # Their sandboxes are gone: their jobs may run again, elsewhere.
                released = await release_jobs(redis, dead)
                await forget(redis, dead)
                log.info(
                    "liveness.reaped", removed=removed, dead_workers=sorted(dead),
                    jobs_released=released,
                )  # fmt: skip
        except Exception:
            # Redis or the engine blinked: try again next beat, never stop beating.
            log.warning("liveness.failed", exc_info=True)
        await asyncio.sleep(interval)
