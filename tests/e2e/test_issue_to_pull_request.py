"""One labeled issue becomes one pull request, through every real part.

A signed `issues.labeled` delivery reaches the real receiver (`qwen-fix web`, its own process)
→ an arq job over a real Redis → the worker (`qwen-fix worker`, its own process) clones from
the GitHub emulator over git smart HTTP → a real Docker sandbox → the scripted model edits a
file and runs the tests → the branch is pushed back to the emulator and a pull request opened.
"""

from __future__ import annotations

import asyncio

import pytest
from arq import create_pool
from arq.connections import RedisSettings

from bot.jobs import IssueJob, enqueue
from tests.e2e.conftest import MakeHarness
from tests.e2e.harness import FILES, REPO, SECRET, call, fix_add_script

pytestmark = [pytest.mark.docker, pytest.mark.slow]


def test_a_labeled_issue_becomes_a_pull_request(make_harness: MakeHarness) -> None:
    # Twice the trajectory: the test runs the same job a second time.
    h = make_harness(fix_add_script() * 2)
    issue = h.emulator.add_issue(REPO, "add() subtracts", "`add(2, 3)` returns -1.", "watcher")

    # Refusals first, so nothing they might queue could hide behind the real job.
    h.emulator.add_label(REPO, "qwen-fix", issue=issue)
    payload = h.emulator.webhook(
        "issues", "labeled", repo=REPO, sender="maintainer", issue=issue, label="qwen-fix"
    )
    assert h.emulator.deliver(h.webhook_url, "issues", payload, "wrong").status_code == 401
    refused = h.label(issue, sender="watcher")
    assert refused["status_code"] == 200

    first = h.emulator.deliver(h.webhook_url, "issues", payload, SECRET, delivery_id="d-1")
    assert first.status_code == 202, first.text
    again = h.emulator.deliver(h.webhook_url, "issues", payload, SECRET, delivery_id="d-1")
    assert again.status_code == 200
    assert again.json()["status"] == "duplicate"

    result = h.job_result(first.json()["detail"])
    assert isinstance(result, dict), h.output()
    pulls = h.emulator.pulls(REPO)
    assert len(pulls) == 1
    pull = pulls[0]
    assert result["pr_number"] == pull["number"]

    branch = f"qwen-fix/issue-{issue}"
    assert (pull["head"], pull["base"], pull["draft"]) == (branch, "main", False)
    assert pull["title"] == "Fix #1: add() subtracts"
    body = pull["body"]
    assert f"Fixes #{issue}" in body
    assert "calc.py | 2 +-" in body
    assert "✅ `python3 -m pytest -q` passed." in body
    assert "<details><summary>Test log</summary>" in body
    assert "1 passed" in body
    assert "- [x] Fix add in calc.py" in body
    assert pull["requested_reviewers"] == ["maintainer"]
    assert h.emulator.file_at(REPO, branch, "calc.py") == FILES["calc.py"].replace("a - b", "a + b")
    assert h.emulator.file_at(REPO, "main", "calc.py") == FILES["calc.py"]
    checks = h.emulator.check_runs(REPO)
    assert [(c["name"], c["conclusion"]) for c in checks] == [("qwen-fix", "success")]
    assert checks[0]["head_sha"] == h.emulator.branches(REPO)[branch]

    # The app acknowledged the label and kept one tracking comment, ending with the link.
    assert [r["content"] for r in h.emulator.reactions(REPO, issue=issue)] == ["eyes"]
    comments = h.bot_comments(issue)
    assert len(comments) == 1
    assert f"Opened #{pull['number']}" in comments[0]["body"]
    assert f"{h.emulator.web_url}/{REPO}/pull/{pull['number']}" in comments[0]["body"]
    assert "- [x] Fix add in calc.py" in comments[0]["body"]

    # arq runs a job at least once: the same job again finds its branch, PR and comment.
    async def rerun() -> str:
        redis = await create_pool(RedisSettings.from_dsn(h.redis_url))
        try:
            job = IssueJob(
                installation_id=h.installation,
                repository=REPO,
                issue_number=issue,
                triggered_by="maintainer",
                delivery_id="d-1-rerun",
            )
            assert await enqueue(redis, job)
            return job.job_id()
        finally:
            await redis.aclose()

    second_id = asyncio.run(rerun())
    second = h.job_result(second_id)
    assert isinstance(second, dict), h.output()
    assert second["pr_number"] == pull["number"]
    assert len(h.emulator.pulls(REPO)) == 1
    assert [name for name in h.emulator.branches(REPO) if name.startswith("qwen-fix/")] == [branch]
    assert len(h.bot_comments(issue)) == 1
    assert h.model.remaining == 0
    assert h.sandboxes(first.json()["detail"], second_id) == []


def test_a_failing_fix_opens_a_draft_that_says_so(make_harness: MakeHarness) -> None:
    call_break = (
        "<tool_call>\n<function=str_replace_editor>\n<parameter=command>\nstr_replace\n"
        "</parameter>\n<parameter=path>\ncalc.py\n</parameter>\n<parameter=old_str>\n"
        "    return a - b\n</parameter>\n<parameter=new_str>\n    return a * b\n</parameter>\n"
        "</function>\n</tool_call>"
    )
    submit = call("submit", summary="Tried.")
    h = make_harness([call_break, submit, submit], mode="raw")
    issue = h.emulator.add_issue(REPO, "add() subtracts", "It does.", "watcher")
    delivery = h.label(issue)
    assert delivery["status_code"] == 202
    h.tracking_says(issue, "Opened #")
    pull = h.emulator.pulls(REPO)[0]
    assert pull["draft"] is True
    assert "❌ `python3 -m pytest -q` failed" in pull["body"]
    assert "1 failed" in pull["body"]
    assert [c["conclusion"] for c in h.emulator.check_runs(REPO)] == ["failure"]
    assert "the tests fail, so it is a draft" in (h.tracking(issue) or "")


def test_signed_commits_go_through_the_git_database_api(make_harness: MakeHarness) -> None:
    config = "signed_commits: true\nreviewers: false\ndraft: always\n"
    h = make_harness(fix_add_script(), files={**FILES, ".github/qwen-fix.yml": config})
    issue = h.emulator.add_issue(REPO, "add() subtracts", "It does.", "watcher")
    assert h.label(issue)["status_code"] == 202
    h.tracking_says(issue, "Opened #")
    pull = h.emulator.pulls(REPO)[0]
    head = h.emulator.branches(REPO)[pull["head"]]
    assert h.emulator.commit_verified(REPO, head)
    assert h.emulator.git_log(REPO, head)[:2] == ["Fix #1: add() subtracts", "Initial commit"]
    assert h.emulator.file_at(REPO, head, "calc.py") == FILES["calc.py"].replace("a - b", "a + b")
    assert pull["draft"] is True  # `draft: always`, although the tests pass
    assert pull["requested_reviewers"] == []  # `reviewers: false`


def test_a_worker_with_a_warm_pool_serves_the_job_from_it(make_harness: MakeHarness) -> None:
    h = make_harness(fix_add_script(), env={"SANDBOX_POOL_SIZE": "1"})
    issue = h.emulator.add_issue(REPO, "add() subtracts", "It does.", "watcher")
    pooled = h.wait_for("the pool to fill", lambda: _pool_containers(h))
    assert h.label(issue)["status_code"] == 202
    h.tracking_says(issue, "Opened #")
    pull = h.emulator.pulls(REPO)[0]
    assert "✅ `python3 -m pytest -q` passed." in pull["body"]
    assert "calc.py | 2 +-" in pull["body"]
    # The job took the pooled sandbox, and the pool started another one for the next job.
    h.wait_for("the pool to refill", lambda: set(_pool_containers(h)) - set(pooled))
    assert not set(pooled) & set(_pool_containers(h))


def _pool_containers(h: object) -> list[str]:
    import docker

    from tests.e2e.harness import Harness

    assert isinstance(h, Harness)
    client = docker.from_env()
    try:
        # Listing entries, not `containers.list`, which inspects each one afterwards and fails
        # on a container removed in between.
        found = client.api.containers(filters={"label": "qwen-fix.pool=1"})
        return [c["Id"] for c in found if c["Labels"].get("qwen-fix.worker", "") and
                str(h.root) in str(c["Mounts"])]  # fmt: skip
    finally:
        client.close()
