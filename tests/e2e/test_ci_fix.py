"""Failed CI on qwen-fix's pull request, end to end: the app reads the failure, pushes one fix
per failing commit, stops when the bound is reached or the failure repeats, and leaves people's
pushes, people's pull requests and its own check run alone.

CI is the emulator's: a test adds workflow runs and check runs and delivers `workflow_run` and
`check_suite` webhooks as GitHub would when they complete. `CiOnEveryPush` goes further: every
push of the app's branch gets a failing run at once, so a bound that did not hold would loop.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from tests.e2e.conftest import MakeHarness
from tests.e2e.harness import FILES, REPO, Harness, call, fix_add_script
from tests.github_emulator.faults import Fault

pytestmark = [pytest.mark.docker, pytest.mark.slow]

BRANCH = "qwen-fix/issue-1"
FAST_CI = {"CI_SETTLE_SECONDS": "1", "CI_POLL_SECONDS": "1"}
QUIET = 4.0
"""Seconds a test watches for something that must not happen: settle and poll are 1 s."""


def actions_log(*errors: str) -> str:
    """A GitHub Actions job log: set-up steps, then a lint step printing `errors` and failing."""
    stamp = "2026-11-30T10:00:0{}.1234567Z "
    lines = [
        "##[group]Run actions/checkout@v4",
        "with:",
        "  repository: octo-org/calc",
        "##[endgroup]",
        "Syncing repository: octo-org/calc",
        "##[group]Run pip install ruff",
        "pip install ruff",
        "##[endgroup]",
        *[f"Collecting ruff (from -r requirements.txt (line {n}))" for n in range(1, 30)],
        "Successfully installed ruff-0.8.0",
        "##[group]Run ruff check .",
        "ruff check .",
        "##[endgroup]",
        *errors,
        f"Found {len(errors)} error{'s' if len(errors) != 1 else ''}.",
        "##[error]Process completed with exit code 1.",
        "Post job cleanup.",
    ]
    return "\n".join(stamp.format(n % 10) + line for n, line in enumerate(lines)) + "\n"


def lint_job(*errors: str, conclusion: str = "failure") -> dict[str, Any]:
    failed = conclusion == "failure"
    return {
        "name": "lint",
        "conclusion": conclusion,
        "steps": [
            "Set up job",
            "Run actions/checkout@v4",
            "Run pip install ruff",
            {"name": "Run ruff check .", "conclusion": conclusion},
        ],
        "log": actions_log(*errors) if failed else "All checks passed!\n",
    }


def run_ci(h: Harness, jobs: list[dict[str, Any]], *, head: str = BRANCH) -> list[dict[str, Any]]:
    """A workflow run on the branch's tip completes: GitHub sends `workflow_run` and then the
    `check_suite` of GitHub Actions. Returns both deliveries."""
    run = h.emulator.add_workflow_run(REPO, head, jobs)
    payload = h.emulator.webhook("workflow_run", "completed", repo=REPO, sender="alice",
                                 workflow_run=run)  # fmt: skip
    suite = payload["workflow_run"]["check_suite_id"]
    return [
        h.emulator.send("workflow_run", payload),
        h.send("check_suite", "completed", sender="alice", check_suite=suite),
    ]


def answer(delivery: dict[str, Any]) -> dict[str, str]:
    """The receiver's answer to a delivery: `status` and `detail`."""
    body: dict[str, str] = json.loads(delivery["response"]["payload"])
    return body


def open_pull_request(h: Harness) -> int:
    """qwen-fix fixes issue #1 and opens its pull request."""
    issue = h.emulator.add_issue(REPO, "add() subtracts", "`add(2, 3)` returns -1.", "watcher")
    h.label(issue)
    h.tracking_says(issue, "Opened #")
    (pull,) = h.emulator.pulls(REPO)
    return int(pull["number"])


def docstring_fix(function: str, doc: str) -> list[str]:
    """The agent's turns for one CI fix: a docstring on `function`, then submit."""
    summary = f"Gave `{function}` a docstring, as the linter asks."
    old = f"def {function}(a, b):\n"
    new = f'{old}    """{doc}"""\n'
    return [
        call("str_replace_editor", command="str_replace", path="calc.py", old_str=old, new_str=new),
        call("submit", summary=summary),
        call("submit", summary=summary),
    ]


def ci_task(h: Harness) -> list[str]:
    """The task text of each CI fix the model was asked for."""
    return [
        request["messages"][1]["content"]
        for request in h.model.requests
        if "Failed checks on pull request" in str(request["messages"][1]["content"])
        and len(request["messages"]) == 2
    ]


def fix_commits(h: Harness) -> list[str]:
    return [s for s in h.emulator.git_log(REPO, BRANCH) if s.startswith("Fix CI")]


def replies(h: Harness, pull: int, text: str) -> list[str]:
    return [c["body"] for c in h.bot_comments(pull) if text in c["body"]]


def stays(h: Harness, what: str, check: Callable[[], bool]) -> None:
    """`check` holds for QUIET seconds: nothing more happens."""
    deadline = time.monotonic() + QUIET
    while time.monotonic() < deadline:
        assert check(), f"{what}\n{h.output()}"
        time.sleep(0.2)


D103_MUL = "calc.py:5:5: D103 Missing docstring in public function `mul`"
D103_ADD = "calc.py:1:5: D103 Missing docstring in public function `add`"


def test_a_failing_lint_job_gets_one_fix_and_passing_ci_ends_it(make_harness: MakeHarness) -> None:
    h = make_harness(fix_add_script() + docstring_fix("mul", "Product."), env=FAST_CI)
    pull = open_pull_request(h)
    opened = h.emulator.branches(REPO)[BRANCH]

    deliveries = run_ci(h, [lint_job(D103_MUL)])
    # Both events of the one run name the same job: one job per pull request and commit.
    assert [d["status_code"] for d in deliveries] == [202, 202]
    job_ids = {answer(d)["detail"] for d in deliveries}
    assert job_ids == {f"ci_fix:{REPO}#{pull}:{opened}"}

    tracking = h.tracking_says(pull, "Pushed")
    assert "[`lint`](http" in tracking and "/runs/" in tracking  # names the check, links it
    assert fix_commits(h) == ["Fix CI (lint): Gave `mul` a docstring, as the linter asks."]
    assert h.emulator.git_log(REPO, BRANCH)[1].startswith("Fix #1")  # one commit on top
    assert '"""Product."""' in (h.emulator.file_at(REPO, BRANCH, "calc.py") or "")
    (task,) = ci_task(h)
    assert D103_MUL in task  # the failing step of the log reached the agent
    assert "Collecting ruff" not in task  # the set-up noise did not
    body = next(p["body"] for p in h.emulator.pulls(REPO) if p["number"] == pull)
    assert "### CI fixes" in body and f"failed on {opened[:7]}: pushed" in body
    assert "[`lint`](http" in body  # linked to the run
    fixed = h.emulator.branches(REPO)[BRANCH]
    ours = [c for c in h.emulator.check_runs(REPO) if c["head_sha"] == fixed]
    assert [c["name"] for c in ours] == ["qwen-fix"]  # the tests ran on the fix

    passing = run_ci(h, [lint_job(conclusion="success")])
    assert [answer(d)["status"] for d in passing] == ["ignored", "ignored"]
    comments = len(h.emulator.comments(REPO, pull))
    stays(h, "nothing more may happen once CI passes", lambda: (
        h.emulator.branches(REPO)[BRANCH] == fixed
        and len(h.emulator.comments(REPO, pull)) == comments
    ))  # fmt: skip
    assert h.model.remaining == 0 and h.model.failures == []


class CiOnEveryPush:
    """GitHub's CI as a loop would meet it: each push of the branch is followed by a failed lint
    run (a new error every time) and its webhooks, from the emulator's side, at once."""

    def __init__(self, h: Harness) -> None:
        self.h = h
        self.runs = 0
        self._lock = threading.Lock()
        self.fault = h.emulator.faults.add(
            Fault("POST", r".*/git-receive-pack", after=self._pushed, times=None)
        )

    def _pushed(self, method: str, path: str) -> None:
        # After the push was applied, before git hears back: the pull request already exists.
        threading.Thread(target=self._fail, daemon=True).start()

    def _fail(self) -> None:
        with self._lock:
            self.runs += 1
            error = f"calc.py:{self.runs}:1: E{300 + self.runs} a new complaint, number {self.runs}"
        time.sleep(0.5)
        run_ci(self.h, [lint_job(error)])


def test_a_fix_that_fails_again_and_again_stops_at_the_configured_attempts(
    make_harness: MakeHarness,
) -> None:
    # Three fixes are scripted; the repository allows two (the default): the third must not run.
    fixes = docstring_fix("add", "Sum.") + docstring_fix("mul", "Product.")
    spare = [call("submit", summary="A third attempt must never start.")] * 3
    h = make_harness(fix_add_script() + fixes + spare, env=FAST_CI)
    pull = open_pull_request(h)
    ci = CiOnEveryPush(h)
    run_ci(h, [lint_job(D103_ADD)])

    gave_up = h.wait_for("the could-not-fix comment", lambda: replies(h, pull, "Could not fix CI"))
    assert len(fix_commits(h)) == 2
    (comment,) = gave_up
    assert "2 attempts did not make the checks pass" in comment
    assert "`lint`" in comment and "What I tried:" in comment
    assert "/qwen-fix fix-ci" in comment
    head = h.emulator.branches(REPO)[BRANCH]
    stays(h, "no third attempt, no second could-not-fix comment", lambda: (
        h.emulator.branches(REPO)[BRANCH] == head
        and len(replies(h, pull, "Could not fix CI")) == 1
    ))  # fmt: skip
    assert ci.runs == 2  # CI ran on each fix, and nothing else was pushed
    assert h.model.remaining == len(spare)


def test_the_same_failure_after_a_fix_stops_at_once(make_harness: MakeHarness) -> None:
    h = make_harness(
        fix_add_script() + docstring_fix("add", "Sum.") + docstring_fix("mul", "Product."),
        env=FAST_CI,
    )
    pull = open_pull_request(h)
    run_ci(h, [lint_job(D103_MUL)])
    h.tracking_says(pull, "Pushed")
    # The fix did not help: the same check fails with the same error (other timestamps).
    run_ci(h, [lint_job(D103_MUL)])
    (comment,) = h.wait_for("could not fix", lambda: replies(h, pull, "Could not fix CI"))
    assert "the same checks failed with the same errors after my last fix" in comment
    assert len(fix_commits(h)) == 1
    assert h.model.remaining == len(docstring_fix("mul", "Product."))


def test_a_persons_push_pauses_automatic_fixing_until_asked(make_harness: MakeHarness) -> None:
    h = make_harness(fix_add_script() + docstring_fix("mul", "Product."), env=FAST_CI)
    pull = open_pull_request(h)
    pushed = h.emulator.commit_files(
        REPO, BRANCH, {"NOTES.md": "Some notes.\n"}, "A person's commit"
    )
    run_ci(h, [lint_job(D103_MUL)])
    (paused,) = h.wait_for("the paused note", lambda: replies(h, pull, "a commit I did not push"))
    assert pushed[:7] in paused
    stays(h, "no automatic fix after a person's push", lambda: (
        h.emulator.branches(REPO)[BRANCH] == pushed and h.model.remaining == 3
    ))  # fmt: skip

    h.comment(pull, "/qwen-fix fix-ci")
    h.tracking_says(pull, "Pushed")
    assert fix_commits(h) == ["Fix CI (lint): Gave `mul` a docstring, as the linter asks."]
    assert h.emulator.git_log(REPO, BRANCH)[1] == "A person's commit"


def test_ci_of_pull_requests_the_app_did_not_open_is_left_alone(
    make_harness: MakeHarness,
) -> None:
    h = make_harness([], env=FAST_CI)
    # A person's pull request on a branch of their own naming: not routed at all.
    h.emulator.commit_files(REPO, "feature", {"calc.py": FILES["calc.py"] + "\n"}, "Tweak")
    theirs = h.emulator.add_pull(REPO, "feature", "Tweak", "", "alice")
    answers = run_ci(h, [lint_job(D103_MUL)], head="feature")
    assert [answer(a)["status"] for a in answers] == ["ignored", "ignored"]
    # A person's pull request on a branch named like the app's: queued, refused by the worker.
    h.emulator.commit_files(REPO, "qwen-fix/issue-9", {"NOTES.md": "x\n"}, "Lookalike")
    lookalike = h.emulator.add_pull(REPO, "qwen-fix/issue-9", "Lookalike", "", "alice")
    answers = run_ci(h, [lint_job(D103_MUL)], head="qwen-fix/issue-9")
    assert [a["status_code"] for a in answers] == [202, 202]
    h.wait_for("the worker's verdict", lambda: "not a pull request the app opened" in h.output())
    assert h.bot_comments(theirs) == [] and h.bot_comments(lookalike) == []
    assert h.model.requests == []


def test_the_apps_own_failed_check_is_not_a_trigger(make_harness: MakeHarness) -> None:
    h = make_harness(fix_add_script(), env=FAST_CI)
    pull = open_pull_request(h)
    head = h.emulator.branches(REPO)[BRANCH]
    # The app's own suite fails (its check run says the tests failed): ignored by the receiver.
    suite = h.emulator.add_check_suite(REPO, head, app="qwen-fix", app_name="qwen-fix")
    h.emulator.add_check_run(REPO, head, "qwen-fix", "failure", suite=suite, app="qwen-fix")
    ignored = h.send("check_suite", "completed", sender="alice", check_suite=suite)
    assert answer(ignored)["detail"] == "the app's own check suite"
    # Asked to fix CI where only its own check failed, it says there is nothing to fix.
    h.comment(pull, "/qwen-fix fix-ci")
    (reply,) = h.wait_for("the reply", lambda: replies(h, pull, "No check failed"))
    assert head[:7] in reply
    assert h.emulator.branches(REPO)[BRANCH] == head
    assert h.model.remaining == 0


def test_two_suites_failing_at_once_make_one_job_and_one_fix(make_harness: MakeHarness) -> None:
    fix = docstring_fix("mul", "Product.")
    h = make_harness(fix_add_script() + fix + fix, env=FAST_CI)
    pull = open_pull_request(h)
    head = h.emulator.branches(REPO)[BRANCH]
    typecheck: dict[str, str | None] = {"title": "1 error", "summary": "calc.py:5: error: untyped"}
    h.emulator.add_check_run(REPO, head, "typecheck", "failure", output=typecheck)
    answers = run_ci(h, [lint_job(D103_MUL)])
    suite = next(s for s in h.emulator.check_runs(REPO) if s["name"] == "typecheck")
    answers.append(h.send("check_suite", "completed", sender="alice",
                          check_suite=suite["check_suite"]["id"]))  # fmt: skip
    assert {answer(a)["detail"] for a in answers} == {f"ci_fix:{REPO}#{pull}:{head}"}
    tracking = h.tracking_says(pull, "Pushed")
    assert "`lint`" in tracking and "`typecheck`" in tracking
    (task,) = ci_task(h)
    assert "calc.py:5: error: untyped" in task and D103_MUL in task
    assert len(fix_commits(h)) == 1
    assert h.model.remaining == len(fix)


def test_runs_waiting_for_approval_are_named_once_and_not_fixed(make_harness: MakeHarness) -> None:
    h = make_harness(fix_add_script(), env=FAST_CI)
    pull = open_pull_request(h)
    head = h.emulator.branches(REPO)[BRANCH]
    waiting = {"name": "lint", "conclusion": "action_required", "steps": [], "log": ""}
    assert [d["status_code"] for d in run_ci(h, [waiting])] == [202, 202]
    (note,) = h.wait_for("the approval note", lambda: replies(h, pull, "approval"))
    assert "`lint`" in note and head[:7] in note
    run_ci(h, [waiting])  # delivered again: said once
    stays(h, "one note, no fix", lambda: (
        len(replies(h, pull, "approval")) == 1 and h.emulator.branches(REPO)[BRANCH] == head
    ))  # fmt: skip
    assert h.model.remaining == 0


def test_a_check_that_never_finishes_is_reported_and_not_waited_for(
    make_harness: MakeHarness,
) -> None:
    fix = docstring_fix("mul", "Product.")
    h = make_harness(fix_add_script() + fix, env={**FAST_CI, "CI_PENDING_LIMIT": "3"})
    pull = open_pull_request(h)
    head = h.emulator.branches(REPO)[BRANCH]
    h.emulator.add_check_run(REPO, head, "e2e", None)  # in progress, and it stays so
    run_ci(h, [lint_job(D103_MUL)])
    (stuck,) = h.wait_for("the stuck note", lambda: replies(h, pull, "have not finished"))
    assert "`e2e` (in_progress)" in stuck and head[:7] in stuck
    tracking = h.tracking_says(pull, "Pushed")
    assert "`lint`" in tracking and "`e2e`" not in tracking
    assert len(fix_commits(h)) == 1
    # The agent was told which checks were still running.
    (task,) = ci_task(h)
    assert "Still running (not waited for): e2e" in task
