"""Worker liveness in Redis, so that the sandboxes of a crashed worker are found and removed.

Each worker beats every `interval` seconds; a beat lives four intervals. On each beat the worker
also removes the sandboxes whose worker has stopped beating (and the ended or expired ones).
"""

from __future__ import annotations

import asyncio

import docker
import structlog
from redis.asyncio import Redis

from sandbox.reaper import reap_orphans

log = structlog.get_logger("qwen_fix.liveness")

PREFIX = "qwen-fix:worker-alive:"
BEATS_TO_LIVE = 4


async def beat(redis: Redis, worker_id: str, interval: float) -> None:
    await redis.set(PREFIX + worker_id, "1", px=int(interval * BEATS_TO_LIVE * 1000))


async def live_workers(redis: Redis) -> set[str]:
    names = [key async for key in redis.scan_iter(match=PREFIX + "*", count=500)]
    return {(n.decode() if isinstance(n, bytes) else n).removeprefix(PREFIX) for n in names}


async def beat_and_reap(
    redis: Redis, client: docker.DockerClient, worker_id: str, interval: float
) -> None:
    """Run for the worker's lifetime."""
    while True:
        try:
            await beat(redis, worker_id, interval)
            alive = await live_workers(redis)
            removed = await asyncio.to_thread(reap_orphans, client, live_workers=alive)
            if removed:
                log.info("liveness.reaped", removed=removed, live_workers=len(alive))
        except Exception:
            # Redis or the engine blinked: try again next beat, never stop beating.
            log.warning("liveness.failed", exc_info=True)
        await asyncio.sleep(interval)
