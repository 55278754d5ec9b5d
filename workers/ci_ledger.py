"""What the app remembers of CI fixing on each of its branches, in Redis.

Per repository and branch: the commits the app pushed (so a commit of anyone else is noticed
and pauses automatic fixing), the fix attempts made (each with the failures it was about, to
count them and to see the same failure come back), the head commits already tried, and the
notes already posted (so a re-run check does not post the same comment twice).

Everything here is written by the worker from GitHub's answers; nothing the model says reaches it.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

from redis.asyncio import Redis

from bot.redis_connection import reply

PREFIX = "qwen-fix:ci:"
KEEP = 30 * 24 * 3600
"""Seconds a branch's record lives after its last change, as the work registry keeps jobs."""


@dataclass(frozen=True, slots=True)
class CiFixLimits:
    """The operator's side of CI fixing (CI_* settings)."""

    max_attempts: int = 3
    """The ceiling on a repository's `ci_fix.attempts`."""
    pending_limit: float = 3600.0
    """Seconds a check may stay queued or running before it is reported and not waited on."""
    poll: float = 60.0
    """Seconds between two looks at checks still running."""

    def max_polls(self) -> int:
        """How many looks a job takes before the pending limit has surely passed."""
        return int(self.pending_limit // self.poll) + 2


@dataclass(frozen=True, slots=True)
class Attempt:
    """One fix attempt: on which head commit, for which failures, and what it did."""

    head_sha: str
    signature: str
    """What failed (workers/ci_failures.failure_signature), to see the same failure again."""
    checks: tuple[str, ...]
    summary: str
    commit: str | None = None
    """The commit pushed, None when the agent found no change to make."""
    links: tuple[str, ...] = ()
    """The failed checks' pages on GitHub, one per check ("" where there is none)."""

    @classmethod
    def of(cls, text: str | bytes) -> Attempt:
        data = json.loads(text)
        data["checks"] = tuple(data["checks"])
        data["links"] = tuple(data.get("links", ()))
        return cls(**data)


class CiLedger:
    """The record of one repository's branches; keys are `qwen-fix:ci:<owner/name>:<branch>:…`."""

    def __init__(self, redis: Redis) -> None:
        self._redis = redis

    def _key(self, repository: str, branch: str, part: str) -> str:
        return f"{PREFIX}{repository}:{branch}:{part}"

    async def _keep(self, repository: str, branch: str, *parts: str) -> None:
        async with self._redis.pipeline(transaction=False) as pipe:
            for part in parts:
                pipe.expire(self._key(repository, branch, part), KEEP)
            await pipe.execute()

    async def pushed(self, repository: str, branch: str, sha: str) -> None:
        """The app pushed `sha` to the branch."""
        await reply(self._redis.sadd(self._key(repository, branch, "pushed"), sha))
        await self._keep(repository, branch, "pushed")

    async def started_over(self, repository: str, branch: str, sha: str) -> None:
        """An issue job (re)wrote the branch: a new pull request's worth of attempts."""
        await self._redis.delete(
            *(
                self._key(repository, branch, part)
                for part in ("attempts", "paused", "tried", "counts")
            )
        )
        await self.pushed(repository, branch, sha)

    async def is_ours(self, repository: str, branch: str, sha: str) -> bool:
        key = self._key(repository, branch, "pushed")
        return bool(await reply(self._redis.sismember(key, sha)))

    async def pause(self, repository: str, branch: str, reason: str) -> None:
        await self._redis.set(self._key(repository, branch, "paused"), reason, ex=KEEP)

    async def paused(self, repository: str, branch: str) -> str | None:
        value = await self._redis.get(self._key(repository, branch, "paused"))
        return value.decode() if isinstance(value, bytes) else value

    async def resume(self, repository: str, branch: str, *, fresh: bool = False) -> None:
        """Someone asked again: fixing is no longer paused; `fresh` also forgets the attempts
        made, so the repository's full number is allowed again."""
        parts = ("paused", "attempts", "tried", "counts") if fresh else ("paused",)
        await self._redis.delete(*(self._key(repository, branch, part) for part in parts))

    async def attempts(self, repository: str, branch: str) -> list[Attempt]:
        values = await reply(self._redis.lrange(self._key(repository, branch, "attempts"), 0, -1))
        return [Attempt.of(value) for value in values]

    async def record(self, repository: str, branch: str, attempt: Attempt) -> None:
        """An attempt ended: count it, and never try its head commit again."""
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.rpush(self._key(repository, branch, "attempts"), json.dumps(asdict(attempt)))
            pipe.sadd(self._key(repository, branch, "tried"), attempt.head_sha)
            if attempt.commit is not None:
                pipe.sadd(self._key(repository, branch, "pushed"), attempt.commit)
            await pipe.execute()
        await self._keep(repository, branch, "attempts", "tried", "pushed")

    async def tried(self, repository: str, branch: str, sha: str) -> bool:
        key = self._key(repository, branch, "tried")
        return bool(await reply(self._redis.sismember(key, sha)))

    async def count_note(self, repository: str, branch: str, note: str) -> int:
        """Count one more of `note` (e.g. `start:<sha>`); returns the count."""
        count = await reply(self._redis.hincrby(self._key(repository, branch, "counts"), note, 1))
        await self._keep(repository, branch, "counts")
        return int(count)

    async def note_count(self, repository: str, branch: str, note: str) -> int:
        value = await reply(self._redis.hget(self._key(repository, branch, "counts"), note))
        return int(value or 0)

    async def note_once(self, repository: str, branch: str, note: str) -> bool:
        """True the first time `note` (e.g. `gave-up:<sha>`) is noted on the branch."""
        added = await reply(self._redis.sadd(self._key(repository, branch, "notes"), note))
        await self._keep(repository, branch, "notes")
        return bool(added)
