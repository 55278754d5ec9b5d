"""Admission under real arq workers: jobs waiting for a model slot take arq job slots, yet the
fair order holds across workers and `/qwen-fix stop` still ends a waiting job within seconds."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from arq import create_pool
from arq.connections import ArqRedis, RedisSettings
from arq.jobs import Job, JobStatus
from arq.worker import Worker, func

from bot.control import WorkRegistry
from bot.settings import Settings
from tests.github_emulator.auth import new_key_pair
from workers.admission import Admission, AdmissionLimits, Ticket
from workers.limits import job_time_limit
from workers.model_slot import ModelSlots
from workers.worker import build_worker, model_slots, pipeline_config

KEY = new_key_pair()[0]


async def held_run(ctx: dict[str, Any], installation: int, hold: float) -> int:
    """A job whose whole run is its model slot: the admission's number is its result."""
    slots: ModelSlots = ctx["model_slots"]
    enqueued = ctx["enqueue_time"].timestamp()
    async with slots.job(ctx["job_id"], installation, enqueued) as slot:
        number = await slot.acquire()
        await asyncio.sleep(hold)
        return number


class Fleet:
    """arq workers in this process, each with --max-jobs `places` and `held` more arq slots."""

    def __init__(self, redis_url: str, limits: AdmissionLimits) -> None:
        self.settings = RedisSettings.from_dsn(redis_url)
        self.queue_name = f"test:queue:{uuid.uuid4().hex}"
        self.prefix = f"test:{uuid.uuid4().hex}:"
        self.limits = limits
        self.running: list[tuple[Worker, asyncio.Task[None]]] = []

    def start(self, count: int, *, places: int, held: int) -> None:
        for n in range(count):

            async def startup(ctx: dict[str, Any], name: str = f"worker-{n}") -> None:
                admission = Admission(ctx["redis"], self.limits, prefix=self.prefix)
                ctx["model_slots"] = ModelSlots(
                    admission, None, worker_id=name, places=places, queue_timeout=60, poll=0.05
                )

            worker = Worker(
                functions=[func(held_run, name="held_run", timeout=60)],
                redis_settings=self.settings,
                queue_name=self.queue_name,
                on_startup=startup,
                max_jobs=places + held,
                allow_abort_jobs=True,
                poll_delay=0.05,
                handle_signals=False,
                keep_result=60,
            )
            self.running.append((worker, asyncio.create_task(worker.async_run())))

    async def stop(self) -> None:
        for worker, task in self.running:
            with contextlib.suppress(asyncio.CancelledError):
                await worker.close()
                await task

    def admission(self, redis: ArqRedis) -> Admission:
        return Admission(redis, self.limits, prefix=self.prefix)


@pytest.fixture
async def queue(redis_url: str) -> AsyncIterator[ArqRedis]:
    pool = await create_pool(RedisSettings.from_dsn(redis_url))
    yield pool
    await pool.aclose()


async def until(check: Any, timeout: float = 10.0) -> float:
    started = time.monotonic()
    while not await check():
        assert time.monotonic() - started < timeout, "timed out"
        await asyncio.sleep(0.02)
    return time.monotonic() - started


async def test_a_later_installation_goes_before_the_backlog_of_another_across_workers(
    redis_url: str, queue: ArqRedis
) -> None:
    fleet = Fleet(redis_url, AdmissionLimits(max_runs=1, max_runs_per_installation=1))
    admission = fleet.admission(queue)
    # Nobody is admitted until both workers have taken all six: the order is then the rule's,
    # not the order in which the workers happened to pick the jobs up.
    await admission.record_saturation(True, ttl=60)
    jobs: list[tuple[int, Job]] = []
    for n, installation in enumerate([1, 1, 1, 1, 1, 2]):
        job = await queue.enqueue_job(
            "held_run",
            installation,
            0.4,
            _job_id=f"{fleet.queue_name}:{n}",
            _queue_name=fleet.queue_name,
        )
        assert job is not None
        jobs.append((installation, job))
        await asyncio.sleep(0.005)  # enqueue times differ: oldest first within one
    fleet.start(2, places=1, held=4)
    try:

        async def all_waiting() -> bool:
            return (await admission.snapshot()).waiting.total() == 6

        await until(all_waiting)
        assert len(fleet.running) == 2
        await admission.record_saturation(False, ttl=60)
        numbers = [(await job.result(timeout=20), installation) for installation, job in jobs]
    finally:
        await fleet.stop()
    order = [installation for _, installation in sorted(numbers)]
    # arq alone would run them first in, first out: installation 2 last.
    assert order == [1, 2, 1, 1, 1, 1]


async def test_stop_ends_a_waiting_job_within_seconds_even_with_a_backlog(
    redis_url: str, queue: ArqRedis
) -> None:
    fleet = Fleet(redis_url, AdmissionLimits(max_runs=1, max_runs_per_installation=1))
    admission = fleet.admission(queue)
    blocker = Ticket("blocker", 9, "elsewhere", 1, time.time())
    assert (await admission.join(blocker)).admitted
    # More jobs than the worker takes from arq (1 + 2), so its poll loop has a backlog.
    jobs = [
        await queue.enqueue_job(
            "held_run", 1, 0.0, _job_id=f"{fleet.queue_name}:{n}", _queue_name=fleet.queue_name
        )
        for n in range(5)
    ]
    fleet.start(1, places=1, held=2)
    try:

        async def three_waiting() -> bool:
            return (await admission.snapshot()).waiting.total() == 3

        await until(three_waiting)
        target = jobs[0]
        assert target is not None
        await WorkRegistry(queue).abort(target.job_id, "stopped by @maintainer")

        async def gone() -> bool:
            return await target.status() == JobStatus.complete

        assert await until(gone) < 3.0
        await until(three_waiting)  # the next job in arq queue took its place
        await admission.release(blocker.job_id)
        for job in jobs[1:]:
            assert job is not None
            await job.result(timeout=20)
    finally:
        await fleet.stop()
    assert (await admission.snapshot()).slots.total() == 0


async def test_a_worker_takes_more_jobs_than_it_runs_and_waits_within_its_timeout(
    redis_url: str, queue: ArqRedis, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)  # no stray .env
    settings = Settings(
        app_id=1, webhook_secret="s", private_key=KEY, redis_url=redis_url,
        model_base_url="http://gpu:8000/v1", model_queue_timeout=600, worker_held_jobs=20,
    )  # fmt: skip
    worker = build_worker(settings, max_jobs=3)
    assert worker.max_jobs == 3 + 20
    config = pipeline_config(settings)
    run_time = job_time_limit(config.agent, config.test_timeout)
    assert {f.timeout_s for f in worker.functions.values()} == {run_time + 600}
    slots = model_slots(settings, queue, "w1", places=3)
    assert slots.probe is not None and slots.probe.url == "http://gpu:8000/metrics"
    assert slots.admission.limits == AdmissionLimits(8, 4, lease_ttl=60.0)
    quiet = settings.model_copy(update={"model_metrics_url": ""})
    assert model_slots(quiet, queue, "w1", places=3).probe is None
    await slots.probe.close()
