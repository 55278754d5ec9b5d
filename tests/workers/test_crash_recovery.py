"""The jobs of a dead worker on a real Redis, as arq keeps them: only unfinished ones run again."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
from arq.constants import in_progress_key_prefix
from redis.asyncio import Redis

from workers.crash_recovery import ended, release_jobs, running


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_url)
    yield client
    await client.aclose()


async def test_a_dead_workers_unfinished_jobs_lose_their_in_progress_mark(redis: Redis) -> None:
    queue = f"test:queue:{uuid.uuid4().hex}"
    dead, alive = f"w-{uuid.uuid4().hex[:6]}", f"w-{uuid.uuid4().hex[:6]}"
    jobs = {name: f"job-{name}-{uuid.uuid4().hex[:6]}" for name in ("a", "b", "done", "other")}
    for name in ("a", "b", "other"):  # arq keeps a job in its queue until it finished
        await redis.zadd(queue, {jobs[name]: 1})
    for job in jobs.values():
        await redis.set(in_progress_key_prefix + job, b"1", ex=3600)
    for name in ("a", "b", "done"):
        await running(redis, dead, jobs[name])
    await running(redis, alive, jobs["other"])
    await running(redis, dead, "job-that-ended")
    await ended(redis, dead, "job-that-ended")

    released = await release_jobs(redis, [dead], queue=queue)

    assert sorted(released) == sorted([jobs["a"], jobs["b"]])
    assert not await redis.exists(in_progress_key_prefix + jobs["a"])
    assert not await redis.exists(in_progress_key_prefix + jobs["b"])
    # Finished (no longer queued), or another worker's: left as they are.
    assert await redis.exists(in_progress_key_prefix + jobs["done"])
    assert await redis.exists(in_progress_key_prefix + jobs["other"])
    # The dead worker's record is gone, so a second round releases nothing.
    assert await release_jobs(redis, [dead], queue=queue) == []


async def test_a_job_released_once_is_not_released_again_by_a_second_worker(redis: Redis) -> None:
    queue = f"test:queue:{uuid.uuid4().hex}"
    dead, job = f"w-{uuid.uuid4().hex[:6]}", f"job-{uuid.uuid4().hex[:6]}"
    await redis.zadd(queue, {job: 1})
    await redis.set(in_progress_key_prefix + job, b"1", ex=3600)
    await running(redis, dead, job)
    first, second = (
        await release_jobs(redis, [dead], queue=queue),
        await release_jobs(redis, [dead], queue=queue),
    )
    assert (first, second) == ([job], [])
