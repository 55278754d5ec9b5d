"""A worker killed with SIGKILL at ten points of a job: every job still finishes exactly once,
with one branch, one pull request, one tracking comment and one check run per commit, and no
sandbox left behind.

The kill points are moments GitHub, the engine or the model server can see: the emulator
kills the worker as a request arrives or just before its answer leaves (the worker did the
write but never learnt it), and the test kills it while the model or the tests are busy.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import pytest

from tests.e2e.conftest import MakeHarness
from tests.e2e.harness import FILES, REPO, Harness, fix_add_script
from tests.github_emulator.faults import Fault
from tests.reliability.conftest import slowed

pytestmark = [pytest.mark.docker, pytest.mark.slow]

API = "/api/v3/repos/octo-org/calc"
SLOW_TEST = (
    "import time\n\nfrom calc import add\n\n\n"
    "def test_add():\n    time.sleep(1.5)\n    assert add(2, 3) == 5\n"
)


@dataclass(frozen=True)
class KillPoint:
    name: str
    fault: Callable[[Callable[[str, str], None]], Fault] | None = None
    """The emulator's fault that kills the worker (given the kill)."""
    watch: Callable[[Harness, str, int], bool] | None = None
    """Else: true once the test should kill it (harness, job id, model requests before)."""


def model_asked(turn: int, then: float = 0.0) -> Callable[[Harness, str, int], bool]:
    """The model was asked for `turn` (0-based) of this job's conversation, `then` s ago."""
    seen: dict[int, float] = {}

    def check(h: Harness, job_id: str, before: int) -> bool:
        if len(h.model.requests) < before + turn + 1:
            return False
        first = seen.setdefault(before, time.monotonic())
        return time.monotonic() - first >= then

    return check


POINTS = [
    KillPoint("tracking comment posted, answer lost",
              lambda kill: Fault("POST", rf"{API}/issues/\d+/comments", after=kill)),
    KillPoint("cloning the repository",
              lambda kill: Fault("POST", r"/octo-org/calc\.git/git-upload-pack", before=kill)),
    KillPoint("sandbox started", watch=lambda h, job, _: bool(h.sandboxes(job))),
    KillPoint("waiting on a model step", watch=model_asked(1)),
    KillPoint("agent running the tests", watch=model_asked(3, then=0.6)),
    # The agent submitted 0.8 s ago: its change is being verified in a fresh exec (1.5 s).
    KillPoint("final test run", watch=model_asked(4, then=0.8)),
    KillPoint("branch pushed, before the pull request",
              lambda kill: Fault("POST", r"/octo-org/calc\.git/git-receive-pack", after=kill)),
    KillPoint("pull request opened, answer lost",
              lambda kill: Fault("POST", rf"{API}/pulls", after=kill)),
    KillPoint("check run posted, answer lost",
              lambda kill: Fault("POST", rf"{API}/check-runs", after=kill)),
    KillPoint("tracking comment finished, before the job's end",
              lambda kill: Fault("PATCH", rf"{API}/issues/comments/\d+", body="Opened #",
                                 after=kill)),
]  # fmt: skip


def test_every_job_finishes_exactly_once_whatever_point_its_worker_is_killed_at(
    make_harness: MakeHarness,
) -> None:
    files = {**FILES, "test_calc.py": SLOW_TEST}
    # The first two model turns slow enough to be killed in; beats every 0.5 s: a killed worker
    # counts as dead 2 s after its last beat.
    h = make_harness(
        slowed(fix_add_script(), {0: 0.8, 1: 0.8}),
        files=files,
        per_conversation=True,
        env={"WORKER_HEARTBEAT": "0.5"},
    )
    jobs: dict[int, str] = {}
    for point in POINTS:
        killed = threading.Event()

        def kill(method: str = "", path: str = "", killed: threading.Event = killed) -> None:
            worker = h.processes.pop("worker", None)
            if worker is not None:
                worker.kill()  # SIGKILL: no shutdown hook, no finally blocks
                worker.wait(timeout=10)
            killed.set()

        fault = h.emulator.faults.add(point.fault(kill)) if point.fault else None
        before = len(h.model.requests)
        issue = h.emulator.add_issue(REPO, f"add() subtracts ({point.name})", "It does.", "watcher")
        job_id = json.loads(h.label(issue)["response"]["payload"])["detail"]
        jobs[issue] = job_id
        if point.watch is not None:
            watch = partial(point.watch, h, job_id, before)
            h.wait_for(point.name, watch, timeout=120)
            kill()
        assert killed.wait(timeout=120), f"the worker was never killed at {point.name!r}"
        if fault is not None:
            h.emulator.faults.remove(fault)
        h.start("worker")
        result = h.job_result(job_id)
        assert result["state"] == "opened", (point.name, result, h.output())

    pulls = h.emulator.pulls(REPO)
    branches = h.emulator.branches(REPO)
    runs = h.emulator.check_runs(REPO)
    duplicates = []
    for issue in jobs:
        branch = f"qwen-fix/issue-{issue}"
        mine = [p for p in pulls if p["head"] == branch]
        tracking = [
            c for c in h.bot_comments(issue) if "<!-- qwen-fix:tracking -->" in (c["body"] or "")
        ]
        head_runs = [r for r in runs if r["head_sha"] == branches.get(branch)]
        if (len(mine), len(tracking), len(head_runs)) != (1, 1, 1):
            duplicates.append((issue, len(mine), len(tracking), len(head_runs)))
        assert "Opened #" in (h.tracking(issue) or ""), issue
    per_commit = [r["head_sha"] for r in runs]
    twice = {sha for sha in per_commit if per_commit.count(sha) > 1}
    strays = [b for b in branches if b != "main" and b not in {f"qwen-fix/issue-{i}" for i in jobs}]
    h.wait_for("the killed workers' sandboxes to go",
               lambda: not h.sandboxes(*jobs.values()) or None, timeout=60)  # fmt: skip
    print(
        f"\n{len(POINTS)} kills, {len(jobs)} jobs finished once, "
        f"{len(duplicates) + len(twice) + len(strays)} duplicates, "
        f"{len(h.sandboxes(*jobs.values()))} orphans"
    )
    assert duplicates == [], duplicates
    assert twice == set(), twice
    assert strays == [], strays
    assert h.model.failures == []
