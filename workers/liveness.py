"""Worker liveness in Redis, so that the sandboxes and jobs of a crashed worker are found: its
sandboxes removed, its jobs run again (workers/crash_recovery.py).

Each worker joins a set of known workers and beats every `interval` seconds; a beat lives four
intervals. On each beat a worker removes the sandboxes of known workers that stopped beating
(and ended or expired ones). Workers of another deployment sharing the Docker engine are not
known to this Redis, so their sandboxes are left alone.
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

PREFIX = "qwen-fix:worker-alive:"
KNOWN = "qwen-fix:workers"
BEATS_TO_LIVE = 4


async def beat(redis: Redis, worker_id: str, interval: float) -> None:
    # redis-py types set commands as sync-or-async; on the asyncio client they are awaitable.
    await cast(Awaitable[int], redis.sadd(KNOWN, worker_id))
    await redis.set(PREFIX + worker_id, "1", px=int(interval * BEATS_TO_LIVE * 1000))


async def dead_workers(redis: Redis) -> set[str]:
    """Known workers whose beat has lapsed."""
    known = {_text(name) for name in await cast(Awaitable[set[bytes]], redis.smembers(KNOWN))}
    alive = {_text(key).removeprefix(PREFIX) async for key in redis.scan_iter(PREFIX + "*")}
    return known - alive


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
                # Forget them, so the set stays small.
                await cast(Awaitable[int], redis.srem(KNOWN, *dead))
                log.info(
                    "liveness.reaped", removed=removed, dead_workers=sorted(dead),
                    jobs_released=released,
                )  # fmt: skip
        except Exception:
            # Redis or the engine blinked: try again next beat, never stop beating.
            log.warning("liveness.failed", exc_info=True)
        await asyncio.sleep(interval)
