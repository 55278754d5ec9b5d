"""Redis restarted (append-only file, as the deploy files run it) while one job runs and two
wait for a model slot: no job is lost and none runs twice to completion."""

from __future__ import annotations

import json

import pytest

from tests.e2e.conftest import MakeHarness
from tests.e2e.harness import REPO, fix_add_script
from tests.reliability.conftest import DurableRedis, slowed

pytestmark = [pytest.mark.docker, pytest.mark.slow]

DOWN = 5.0
"""Seconds without Redis: longer than a worker's poll, a beat and a model slot's renewal."""


def test_no_job_is_lost_or_run_twice_when_redis_restarts(
    durable_redis: DurableRedis, make_harness: MakeHarness
) -> None:
    # (Redis first: it is stopped after the app, whose shutdown still talks to it.)
    # One run at a time: the other two jobs wait, taken by the worker, for a model slot.
    h = make_harness(
        slowed(fix_add_script(), {1: 3.0}),  # the restart happens while the model thinks
        per_conversation=True,
        redis_at=durable_redis.url,
        env={"WORKER_HEARTBEAT": "0.5", "MODEL_MAX_RUNS": "1"},
    )
    jobs = {}
    for n in range(3):
        issue = h.emulator.add_issue(REPO, f"add() subtracts ({n})", "It does.", "watcher")
        jobs[issue] = json.loads(h.label(issue)["response"]["payload"])["detail"]
    h.wait_for("the first job's model step", lambda: len(h.model.requests) >= 2)
    durable_redis.restart(down=DOWN)
    results = {issue: h.job_result(job_id) for issue, job_id in jobs.items()}
    pulls = h.emulator.pulls(REPO)
    opened = {issue: [p for p in pulls if p["head"] == f"qwen-fix/issue-{issue}"] for issue in jobs}
    finished = [issue for issue, result in results.items() if result["state"] == "opened"]
    published = (h.root / "worker.log").read_text().count('"event": "job.published"')
    print(
        f"\nredis down {DOWN:.0f} s with 1 job running and 2 waiting: {len(finished)} of "
        f"{len(jobs)} jobs finished, {published} publications, "
        f"{sum(len(p) for p in opened.values())} pull requests"
    )
    assert finished == list(jobs), (results, h.output())
    assert all(len(p) == 1 for p in opened.values()), opened
    assert published == len(jobs), h.output()
    assert h.model.failures == []
