"""Worker liveness on a real Redis: beats lapse by Redis's clock, and finding the dead reads one
sorted set, never the keyspace."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from workers.liveness import BEATS, beat, dead_workers, forget


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_url)
    await client.delete(BEATS)
    yield client
    await client.delete(BEATS)
    await client.aclose()


async def test_a_worker_is_dead_once_its_beats_lapse_and_forgotten_after(redis: Redis) -> None:
    await beat(redis, "w-quick", 0.05)  # lives 4 × 0.05 s
    await beat(redis, "w-steady", 30.0)
    assert await dead_workers(redis) == set()
    await asyncio.sleep(0.3)
    assert await dead_workers(redis) == {"w-quick"}
    await beat(redis, "w-quick", 30.0)  # back (a network partition healed): alive again
    assert await dead_workers(redis) == set()
    await beat(redis, "w-quick", 0.01)
    await asyncio.sleep(0.1)
    await forget(redis, await dead_workers(redis))
    assert await redis.zrange(BEATS, 0, -1) == [b"w-steady"]


async def test_finding_the_dead_never_scans_the_keyspace(redis: Redis) -> None:
    async with redis.pipeline(transaction=False) as pipe:
        for n in range(20_000):
            pipe.set(f"test:liveness:filler:{n}", 1, ex=60)
        await pipe.execute()
    await redis.config_resetstat()
    await beat(redis, "w-1", 30.0)
    await dead_workers(redis)
    stats = await redis.info("commandstats")
    assert "cmdstat_scan" not in stats and "cmdstat_keys" not in stats, sorted(stats)
