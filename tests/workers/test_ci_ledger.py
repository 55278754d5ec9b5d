"""The record of CI fixing per branch, over a real Redis: what was pushed, tried and said."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from workers.ci_ledger import Attempt, CiFixLimits, CiLedger
from workers.pr_body import with_ci_fixes

REPO, BRANCH = "octo-org/calc", "qwen-fix/issue-1"


@pytest.fixture
async def ledger(redis_url: str) -> AsyncIterator[CiLedger]:
    redis = Redis.from_url(redis_url)
    await redis.flushall()
    yield CiLedger(redis)
    await redis.aclose()


def attempt(head: str, commit: str | None, signature: str = "sig") -> Attempt:
    return Attempt(head, signature, ("lint",), "Fixed the lint.", commit)


async def test_an_attempt_counts_marks_its_commit_tried_and_its_fix_as_ours(
    ledger: CiLedger,
) -> None:
    await ledger.started_over(REPO, BRANCH, "a" * 40)
    assert await ledger.is_ours(REPO, BRANCH, "a" * 40)
    assert not await ledger.is_ours(REPO, BRANCH, "b" * 40)
    await ledger.record(REPO, BRANCH, attempt("a" * 40, "b" * 40))
    assert await ledger.tried(REPO, BRANCH, "a" * 40)
    assert await ledger.is_ours(REPO, BRANCH, "b" * 40)
    assert await ledger.attempts(REPO, BRANCH) == [attempt("a" * 40, "b" * 40)]
    # Another branch keeps its own record.
    assert await ledger.attempts(REPO, "qwen-fix/issue-2") == []


async def test_a_new_start_or_a_request_forgets_attempts_and_the_pause(ledger: CiLedger) -> None:
    await ledger.record(REPO, BRANCH, attempt("a" * 40, None))
    await ledger.pause(REPO, BRANCH, "someone pushed")
    await ledger.resume(REPO, BRANCH)  # a mention: the pause ends, the attempts still count
    assert await ledger.paused(REPO, BRANCH) is None
    assert len(await ledger.attempts(REPO, BRANCH)) == 1
    await ledger.count_note(REPO, BRANCH, "start:" + "a" * 40)
    await ledger.resume(REPO, BRANCH, fresh=True)  # `fix-ci`: a whole new budget
    assert await ledger.attempts(REPO, BRANCH) == []
    assert not await ledger.tried(REPO, BRANCH, "a" * 40)
    assert await ledger.note_count(REPO, BRANCH, "start:" + "a" * 40) == 0
    await ledger.record(REPO, BRANCH, attempt("c" * 40, None))
    await ledger.started_over(REPO, BRANCH, "d" * 40)  # the issue job rewrote the branch
    assert await ledger.attempts(REPO, BRANCH) == []


async def test_a_note_is_said_once(ledger: CiLedger) -> None:
    assert await ledger.note_once(REPO, BRANCH, "gave-up:" + "a" * 40)
    assert not await ledger.note_once(REPO, BRANCH, "gave-up:" + "a" * 40)
    assert await ledger.note_once(REPO, BRANCH, "gave-up:" + "b" * 40)


def test_polls_outlast_the_pending_limit() -> None:
    limits = CiFixLimits(pending_limit=3600, poll=60)
    assert limits.max_polls() * limits.poll > limits.pending_limit


def test_the_ci_fixes_section_is_replaced_and_the_rest_of_the_body_kept() -> None:
    body = "Fixes #1\n\nA person added this line."
    first = with_ci_fixes(body, ["1. `lint` failed on abc1234: pushed def5678."])
    assert first.startswith(body) and "### CI fixes" in first
    second = with_ci_fixes(first + "\n\nAnd this one after.", ["1. one", "2. two"])
    assert second.count("### CI fixes") == 1
    assert "pushed def5678" not in second and "2. two" in second
    assert second.startswith(body) and second.endswith("And this one after.")
