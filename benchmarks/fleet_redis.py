"""What Redis does for a large fleet: the admission scripts with K runs in flight, a liveness beat
over a large keyspace, and arq's pick-up with many jobs in progress ahead of a new one.

One private redis-server (append-only file on), started here on a free port; no Docker.

- Admission: the queue is filled with K admitted runs (one installation per 4, 4 per worker), as
  K admissions leave it, then each script of workers/admission.py is timed on top of it: `join`
  of a new job (admitted at once), `poll` of a job waiting behind a full queue, `keep` of an
  admitted one, `agent_done`, `release`, and `record_saturation`. Redis runs one script at a
  time: its time per call is Redis's CPU, and the queue waits while it runs.
- Liveness: `dead_workers` (workers/liveness.py), which each worker runs every
  WORKER_HEARTBEAT, over a keyspace of M other keys (arq's job and result keys, the work
  registry's records: what a busy deployment keeps).
- arq: J jobs in progress (their in-progress keys set, as other workers leave them) ahead of one
  new job in the queue, and one worker with our worker's `max_jobs` (4 + WORKER_HELD_JOBS 32):
  does it start the new job, and how many Redis commands a second do its polls cost?

    python -m benchmarks.fleet_redis [--runs 100,1000,5000,20000] [--keys 10000,100000,1000000]
        [--ahead 100,179,180,500]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from arq import create_pool
from arq.connections import RedisSettings
from arq.constants import in_progress_key_prefix
from arq.jobs import Job, JobStatus
from arq.worker import Worker, func
from redis.asyncio import Redis

from benchmarks.webhook_load import start_redis
from workers.admission import KEYS, PREFIX, Admission, AdmissionLimits, Ticket
from workers.liveness import dead_workers

PER_INSTALLATION = 4
PLACES = 4
OUR_MAX_JOBS = 4 + 32
"""`qwen-fix worker`'s arq max_jobs with the defaults: --max-jobs 4 + WORKER_HELD_JOBS 32."""


async def timed(action: Callable[[], Awaitable[Any]], count: int) -> float:
    """Median seconds of `count` calls."""
    times = []
    for _ in range(count):
        began = time.perf_counter()
        await action()
        times.append(time.perf_counter() - began)
    return statistics.median(times)


async def fill_admitted(redis: Redis, runs: int) -> None:
    """The keys K admissions leave (workers/admission.py's layout), written in bulk: admitting
    them one by one costs O(K²)."""
    _, expiry, running, agents, jobs, turns, seq, _ = (PREFIX + k for k in KEYS)
    await redis.flushdb()
    now_ms = int(time.time() * 1000)
    for first in range(0, runs, 1000):
        async with redis.pipeline(transaction=False) as pipe:
            for n in range(first, min(first + 1000, runs)):
                job = f"run-{n}"
                installation, worker = n // PER_INSTALLATION, f"worker-{n // PLACES}"
                pipe.hset(jobs, job, f"{installation}\t{worker}\t{PLACES}")
                pipe.zadd(running, {job: n + 1})
                pipe.sadd(agents, job)
                pipe.zadd(expiry, {job: now_ms + 3_600_000})
                pipe.hset(turns, str(installation), str(n + 1))
            await pipe.execute()
    await redis.set(seq, runs)


async def admission_row(redis: Redis, runs: int, count: int) -> dict[str, float]:
    await fill_admitted(redis, runs)
    roomy = Admission(
        redis, AdmissionLimits(max_runs=runs + 10_000, max_runs_per_installation=10**6)
    )
    full = Admission(redis, AdmissionLimits(max_runs=runs, max_runs_per_installation=10**6))
    serial = iter(range(10**9))

    def ticket(name: str) -> Ticket:
        return Ticket(f"{name}-{next(serial)}", 10**7, "worker-bench", PLACES, time.time())

    async def join_and_release() -> None:
        admitted = ticket("new")
        await roomy.join(admitted)
        await roomy.release(admitted.job_id)

    row = {"join + release": await timed(join_and_release, count)}
    waiting = ticket("waiting")
    await full.join(waiting)
    row["poll (waiting)"] = await timed(lambda: full.poll(waiting.job_id), count)
    await full.release(waiting.job_id)
    kept = ticket("kept")
    await roomy.join(kept)
    row["keep (admitted)"] = await timed(lambda: roomy.keep(kept, agent=True), count)
    row["agent_done"] = await timed(lambda: roomy.agent_done(kept.job_id), count)
    row["record_saturation"] = await timed(lambda: roomy.record_saturation(False, 6.0), count)
    return row


async def liveness_row(redis: Redis, keys: int) -> tuple[float, int]:
    """Seconds of one `dead_workers` over `keys` other keys, and the SCAN calls it made."""
    await redis.flushdb()
    for first in range(0, keys, 10_000):
        await redis.mset({f"arq:result:{n}": b"x" for n in range(first, min(first + 10_000, keys))})
    before = (await redis.info("commandstats")).get("cmdstat_scan", {}).get("calls", 0)
    seconds = await timed(lambda: dead_workers(redis), 1)
    after = (await redis.info("commandstats"))["cmdstat_scan"]["calls"]
    return seconds, int(after - before)


async def noop(ctx: dict[str, Any]) -> None:
    return None


async def arq_row(redis_url: str, redis: Redis, ahead: int, wait: float) -> tuple[bool, float]:
    """Whether a worker starts a new job behind `ahead` jobs in progress within `wait` seconds,
    and the Redis commands per second its polls cost meanwhile."""
    await redis.flushdb()
    settings = RedisSettings.from_dsn(redis_url)
    pool = await create_pool(settings)
    for n in range(ahead):
        await pool.enqueue_job("noop", _job_id=f"busy-{n}")
        await redis.set(in_progress_key_prefix + f"busy-{n}", b"1", px=3_600_000)
    await pool.enqueue_job("noop", _job_id="new")
    worker = Worker(
        functions=[func(noop, name="noop")], redis_pool=pool, max_jobs=OUR_MAX_JOBS,
        poll_delay=0.5, handle_signals=False, allow_abort_jobs=True, log_results=False,
    )  # fmt: skip
    commands = int((await redis.info("stats"))["total_commands_processed"])
    running = asyncio.create_task(worker.async_run())
    began, started = time.monotonic(), False
    while time.monotonic() - began < wait and not started:
        await asyncio.sleep(0.1)
        started = await Job("new", pool).status() in (JobStatus.in_progress, JobStatus.complete)
    seconds = time.monotonic() - began
    rate = (int((await redis.info("stats"))["total_commands_processed"]) - commands) / seconds
    running.cancel()
    # Cancelled mid-poll, arq's close() re-raises the cancellation of the poll's pipelines.
    with contextlib.suppress(asyncio.CancelledError):
        await running
    with contextlib.suppress(asyncio.CancelledError):
        await worker.close()
    await pool.aclose()
    return started, rate


def numbers(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x]


async def measure(args: argparse.Namespace, redis_url: str) -> None:
    redis = Redis.from_url(redis_url)
    try:
        print("admission scripts with K runs admitted (median ms per call: Redis busy meanwhile)")
        names = ["join + release", "poll (waiting)", "keep (admitted)", "agent_done",
                 "record_saturation"]  # fmt: skip
        print(f"{'K':>7} " + " ".join(f"{name:>18}" for name in names))
        for runs in args.runs:
            row = await admission_row(redis, runs, args.count)
            print(f"{runs:>7} " + " ".join(f"{row[name] * 1000:>18.2f}" for name in names))
        print("\nliveness: one worker's dead_workers() over M other keys")
        for keys in args.keys:
            seconds, scans = await liveness_row(redis, keys)
            print(f"{keys:>9} keys: {seconds * 1000:>9.1f} ms, {scans:>7} SCAN calls")
        print(f"\narq: one worker (max_jobs {OUR_MAX_JOBS}, reads the first "
              f"{max(OUR_MAX_JOBS * 5, 100)} queue entries a poll), J jobs in progress ahead "
              "of a new one")  # fmt: skip
        for ahead in args.ahead:
            started, rate = await arq_row(redis_url, redis, ahead, args.wait)
            if started:
                print(f"{ahead:>7} ahead: started it")
            else:
                print(f"{ahead:>7} ahead: did not start it in {args.wait:g} s, polling at "
                      f"{rate:,.0f} Redis commands/s")  # fmt: skip
    finally:
        await redis.aclose()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=numbers, default=[100, 1000, 5000, 20000])
    parser.add_argument("--keys", type=numbers, default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--ahead", type=numbers, default=[100, 179, 180, 500])
    parser.add_argument("--count", type=int, default=20, help="calls timed per script")
    parser.add_argument("--wait", type=float, default=5.0, help="seconds for arq's pick-up")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="qwen-fix-bench-") as scratch:
        process, port = start_redis(Path(scratch), "fleet")
        try:
            asyncio.run(measure(args, f"redis://127.0.0.1:{port}"))
        finally:
            process.terminate()
            process.wait(timeout=10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
