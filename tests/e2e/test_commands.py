"""Working with people on GitHub, end to end: comment commands, stop, supersede, status,
permission and bot checks, an invalid config, and deliveries lost while the app was down."""

from __future__ import annotations

import json
import time

import pytest

from tests.e2e.conftest import MakeHarness
from tests.e2e.harness import FILES, REPO, call, fix_add_script
from tests.model_server.script import Reply
from tests.prompt_parts import split_prompt

pytestmark = [pytest.mark.docker, pytest.mark.slow]

PLAN = '[{"content": "Change add in calc.py"}, {"content": "Add a test for negatives"}]'
SLOW = 60.0
"""A model turn that takes this long keeps a job running while a test stops it."""


def plan_script() -> list[str | Reply]:
    summary = "Plan: `add` in calc.py subtracts; make it add and cover it with a test."
    return [
        call("todo", command="set", items=PLAN),
        call("search", pattern="def add"),
        call("submit", summary=summary),
        call("submit", summary=summary),
    ]


def test_a_fix_command_in_a_comment_opens_a_pull_request(make_harness: MakeHarness) -> None:
    h = make_harness(fix_add_script())
    issue = h.emulator.add_issue(REPO, "add() subtracts", "It does.", "watcher")
    comment = h.comment(issue, "/qwen-fix please keep the signature as it is")
    body = h.tracking_says(issue, "Opened #")
    assert h.emulator.pulls(REPO)[0]["title"] == "Fix #1: add() subtracts"
    assert [r["content"] for r in h.emulator.reactions(REPO, comment=comment)] == ["eyes"]
    assert "- [x] Fix add in calc.py" in body
    # The maintainer's words reached the model as their trusted request, outside the fence
    # that holds the issue's text.
    parts = split_prompt(h.model.requests[0]["messages"][1]["content"])
    assert "It does." in parts.fenced["the issue"]
    assert "please keep the signature as it is" in parts.outside
    assert "@maintainer, who can write to this repository" in parts.outside


def test_plan_posts_the_plan_and_opens_nothing(make_harness: MakeHarness) -> None:
    h = make_harness(plan_script())
    issue = h.emulator.add_issue(REPO, "add() subtracts", "It does.", "watcher")
    h.comment(issue, "@qwen-fix plan")
    body = h.tracking_says(issue, "**Plan**")
    assert "- [ ] Change add in calc.py" in body
    assert "make it add and cover it with a test" in body
    assert h.emulator.pulls(REPO) == []
    assert [b for b in h.emulator.branches(REPO) if b != "main"] == []
    tools = {t["function"]["name"] for t in h.model.requests[0]["tools"]}
    assert "submit" in tools


def test_ask_answers_in_a_comment_and_changes_nothing(make_harness: MakeHarness) -> None:
    answer = "`mul` is defined in calc.py line 5 and returns `a * b`."
    h = make_harness([
        call("bash", command="grep -n 'def mul' calc.py"),
        call("submit", summary=answer),
        call("submit", summary=answer),
    ])  # fmt: skip
    issue = h.emulator.add_issue(REPO, "Question", "How does multiplication work?", "watcher")
    h.comment(issue, "/qwen-fix ask where is mul defined?")
    body = h.tracking_says(issue, "**Answer**")
    assert answer in body
    assert h.emulator.pulls(REPO) == []
    assert "5:def mul(a, b):" in h.model.requests[1]["messages"][-1]["content"]


def test_retry_runs_the_last_job_again_and_status_reports(make_harness: MakeHarness) -> None:
    h = make_harness(plan_script() * 2)
    issue = h.emulator.add_issue(REPO, "add() subtracts", "It does.", "watcher")
    h.comment(issue, "/qwen-fix plan")
    h.tracking_says(issue, "**Plan**")
    first_requests = len(h.model.requests)
    h.comment(issue, "/qwen-fix retry")
    h.wait_for("the retried plan", lambda: h.model.remaining == 0)
    body = h.tracking_says(issue, "**Plan**")
    assert len(h.model.requests) == 2 * first_requests
    assert len([c for c in h.bot_comments(issue) if "qwen-fix:tracking" in c["body"]]) == 1
    h.comment(issue, "/qwen-fix status")
    status = h.wait_for(
        "a status reply",
        lambda: next(
            (c["body"] for c in h.bot_comments(issue) if "**qwen-fix on #" in c["body"]), None
        ),
    )
    assert "done" in status
    assert "steps" in status
    assert "progress:" in status
    assert body


def test_stop_during_a_run_ends_it_within_seconds(make_harness: MakeHarness) -> None:
    h = make_harness([Reply(call("bash", command="ls"), delay=SLOW)])
    issue = h.emulator.add_issue(REPO, "add() subtracts", "It does.", "watcher")
    job_id = json.loads(h.label(issue)["response"]["payload"])["detail"]
    h.wait_for("the model to be asked", lambda: h.model.requests)
    asked = time.monotonic()
    h.comment(issue, "/qwen-fix stop")
    body = h.tracking_says(issue, "Stopped", timeout=15)
    assert time.monotonic() - asked < 5.0
    assert "maintainer asked to stop" in body
    assert "/qwen-fix retry" in body
    assert h.sandboxes(job_id) == []
    assert h.emulator.pulls(REPO) == []


def test_removing_the_label_cancels_the_run(make_harness: MakeHarness) -> None:
    h = make_harness([Reply(call("bash", command="ls"), delay=SLOW)])
    issue = h.emulator.add_issue(REPO, "add() subtracts", "It does.", "watcher")
    h.label(issue)
    h.wait_for("the model to be asked", lambda: h.model.requests)
    h.emulator.remove_label(REPO, "qwen-fix", issue=issue)
    h.send("issues", "unlabeled", sender="maintainer", issue=issue, label="qwen-fix")
    body = h.tracking_says(issue, "Stopped", timeout=15)
    assert "the label was removed" in body


def test_a_new_trigger_supersedes_the_running_job(make_harness: MakeHarness) -> None:
    h = make_harness([Reply(call("bash", command="ls"), delay=SLOW), *plan_script()])
    issue = h.emulator.add_issue(REPO, "add() subtracts", "It does.", "watcher")
    h.label(issue)
    h.wait_for("the model to be asked", lambda: h.model.requests)
    h.comment(issue, "/qwen-fix plan")
    body = h.tracking_says(issue, "**Plan**")
    assert "- [ ] Change add in calc.py" in body
    assert h.model.remaining == 0
    assert h.emulator.pulls(REPO) == []


def test_read_only_users_and_bots_start_nothing(make_harness: MakeHarness) -> None:
    h = make_harness([])
    issue = h.emulator.add_issue(REPO, "add() subtracts", "It does.", "watcher")
    by_reader = h.emulator.add_comment(REPO, issue, "/qwen-fix", "watcher")
    reader = h.send("issue_comment", "created", sender="watcher", issue=issue, comment=by_reader)
    assert reader["status_code"] == 200
    assert "write is needed" in reader["response"]["payload"]
    h.emulator.add_user("dependabot[bot]", type="Bot")
    h.emulator.set_permission(REPO, "dependabot[bot]", "write")
    by_bot = h.emulator.add_comment(REPO, issue, "/qwen-fix", "dependabot[bot]")
    bot = h.send("issue_comment", "created", sender="dependabot[bot]", issue=issue, comment=by_bot)
    assert bot["status_code"] == 200
    assert "bot" in bot["response"]["payload"]
    assert h.emulator.reactions(REPO, comment=by_reader) == []
    assert [c["user"]["login"] for c in h.bot_comments(issue)] == ["dependabot[bot]"]
    assert h.model.requests == []


def test_an_invalid_config_is_reported_with_its_line_and_nothing_runs(
    make_harness: MakeHarness,
) -> None:
    config = "test: python3 -m pytest -q\nlimits:\n  max_steps: lots\n"
    h = make_harness([], files={**FILES, ".github/qwen-fix.yml": config})
    issue = h.emulator.add_issue(REPO, "add() subtracts", "It does.", "watcher")
    h.label(issue)
    body = h.tracking_says(issue, "Could not finish")
    assert "line 3" in body
    assert "limits.max_steps" in body
    assert h.model.requests == []


def test_deliveries_that_failed_while_down_are_redelivered_at_start(
    make_harness: MakeHarness,
) -> None:
    h = make_harness(fix_add_script(), start=False)
    h.start("worker")
    issue = h.emulator.add_issue(REPO, "add() subtracts", "It does.", "watcher")
    lost = h.label(issue)
    assert lost["status_code"] == 0  # nothing listened: GitHub recorded a failure
    h.start("web")
    h.tracking_says(issue, "Opened #")
    attempts = [d for d in h.emulator.deliveries() if d["guid"] == lost["guid"]]
    assert [d["status_code"] for d in attempts] == [0, 202]


def test_a_failing_setup_command_stops_the_run_with_its_output(make_harness: MakeHarness) -> None:
    config = "setup: echo preparing && exit 3\n"
    h = make_harness([], files={**FILES, ".github/qwen-fix.yml": config})
    issue = h.emulator.add_issue(REPO, "add() subtracts", "It does.", "watcher")
    h.label(issue)
    body = h.tracking_says(issue, "Could not finish")
    assert "The setup command `echo preparing && exit 3` failed (exit 3)" in body
    assert "preparing" in body
    assert h.model.requests == []


def test_a_crashed_workers_sandbox_is_removed_by_the_next_worker(
    make_harness: MakeHarness,
) -> None:
    h = make_harness(
        [Reply(call("bash", command="ls"), delay=SLOW)], env={"WORKER_HEARTBEAT": "0.5"}
    )
    issue = h.emulator.add_issue(REPO, "add() subtracts", "It does.", "watcher")
    job_id = json.loads(h.label(issue)["response"]["payload"])["detail"]
    h.wait_for("the model to be asked", lambda: h.model.requests)
    assert len(h.sandboxes(job_id)) == 1
    crashed = h.processes.pop("worker")
    crashed.kill()  # SIGKILL: no shutdown hook, no finally blocks
    crashed.wait(timeout=10)
    assert len(h.sandboxes(job_id)) == 1  # nobody cleaned up behind it
    h.start("worker")
    h.wait_for("the orphaned sandbox to go", lambda: not h.sandboxes(job_id) or None, timeout=30)
