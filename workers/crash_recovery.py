"""The jobs of a worker that died, made runnable again at once.

arq marks a running job with an in-progress key that lives as long as the longest job may
run, plus ten seconds. A worker killed outright (out of memory, SIGKILL, a lost host) runs no
`finally`, so its jobs stay marked for that long, an hour with the default limits, while
their tracking comments say "working". Every worker therefore records the jobs it runs under
its liveness id. When liveness finds a worker dead (no beat for BEATS_TO_LIVE intervals,
workers/liveness.py), a live worker deletes the marks of that worker's jobs that are still
queued, and arq runs them again on its next poll as a retry (arq counts the tries).

Running a job again is safe because each stage of a job finds what an earlier try left:
the tracking comment by its marker, the pull request by its branch, the branch is pushed
with force, and the check run of a commit is updated rather than posted twice.
"""

from __future__ import annotations

from collections.abc import Awaitable, Iterable
from typing import cast

from arq.constants import default_queue_name, in_progress_key_prefix
from redis.asyncio import Redis

PREFIX = "qwen-fix:worker-jobs:"

# Atomic per dead worker: a job is released only while arq still has it queued (it did not
# finish), and the record of the dead worker goes with it.
RELEASE = """
local released = {}
for _, job in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  if redis.call('ZSCORE', KEYS[2], job) and redis.call('DEL', ARGV[1] .. job) == 1 then
    table.insert(released, job)
  end
end
redis.call('DEL', KEYS[1])
return released
"""


async def running(redis: Redis, worker_id: str, job_id: str) -> None:
    """Record that `worker_id` runs `job_id`."""
    await cast(Awaitable[int], redis.sadd(PREFIX + worker_id, job_id))


async def ended(redis: Redis, worker_id: str, job_id: str) -> None:
    """The job ended on this worker, however it ended."""
    await cast(Awaitable[int], redis.srem(PREFIX + worker_id, job_id))


async def release_jobs(
    redis: Redis, dead_workers: Iterable[str], queue: str = default_queue_name
) -> list[str]:
    """Make the unfinished jobs of `dead_workers` runnable now; returns their ids."""
    released: list[str] = []
    for worker_id in dead_workers:
        jobs = await cast(
            Awaitable[list[bytes]],
            redis.eval(RELEASE, 2, PREFIX + worker_id, queue, in_progress_key_prefix),
        )
        released.extend(job.decode() if isinstance(job, bytes) else job for job in jobs)
    return released
