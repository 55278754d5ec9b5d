"""CI as the app reads it: check suites and runs of other apps, annotations, workflow runs,
jobs, a job's log through its redirect, and the check_suite / workflow_run webhooks."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from githubkit.exception import RequestFailed

from tests.emulator.conftest import Hub
from tests.github_emulator import GitHubEmulator
from tests.github_emulator.rest_actions import LOG_LINK_LIFETIME
from tests.github_emulator.state import now
from tests.github_emulator.webhooks import example

LOG = "##[group]Run pytest\nFAILED tests/test_app.py::test_b - assert 2 == 3\n##[error]exit 1\n"
FAILING_JOB: dict[str, Any] = {
    "name": "test",
    "conclusion": "failure",
    "steps": ["Set up job", {"name": "Run pytest", "conclusion": "failure"}],
    "log": LOG,
    "output": {"title": "1 test failed", "summary": "test_b", "text": "assert 2 == 3"},
    "annotations": [
        {"path": "src/app.py", "start_line": 2, "message": "assert 2 == 3", "title": "test_b"}
    ],
}


def failing_run(hub: Hub) -> int:
    """A workflow run on `fix`, the head of pull #1, with a passing and a failing job."""
    hub.emu.commit_files(hub.repo, "fix", {"src/app.py": "b = 3\n"}, "Break b")
    hub.emu.add_pull(hub.repo, "fix", "Fix b", None, "alice")
    jobs = [{"name": "lint", "steps": ["Set up job", "Run ruff"], "log": "ok\n"}, FAILING_JOB]
    return hub.emu.add_workflow_run(hub.repo, "fix", jobs)


def test_a_workflow_run_has_its_jobs_and_a_failed_conclusion(hub: Hub) -> None:
    actions = hub.installed.rest.actions
    run_id = failing_run(hub)
    run = actions.get_workflow_run("octo", "hello", run_id).parsed_data
    head = hub.emu.branches(hub.repo)["fix"]
    assert (run.status, run.conclusion, run.head_sha, run.head_branch) == (
        "completed", "failure", head, "fix",
    )  # fmt: skip
    assert [pull.number for pull in run.pull_requests or []] == [1]
    jobs = actions.list_jobs_for_workflow_run("octo", "hello", run_id).parsed_data
    assert [(job.name, job.conclusion) for job in jobs.jobs] == [
        ("lint", "success"), ("test", "failure"),
    ]  # fmt: skip
    failed = jobs.jobs[1]
    assert [(s.number, s.name, s.conclusion) for s in failed.steps or []] == [
        (1, "Set up job", "success"), (2, "Run pytest", "failure"),
    ]  # fmt: skip
    alone = actions.get_job_for_workflow_run("octo", "hello", failed.id).parsed_data
    assert (alone.run_id, alone.workflow_name) == (run_id, "CI")


def test_each_job_is_a_check_run_of_github_actions_with_its_annotations(hub: Hub) -> None:
    checks = hub.installed.rest.checks
    run_id = failing_run(hub)
    job = hub.emu.workflow_jobs(hub.repo, run_id)[1]
    check = checks.get("octo", "hello", job["id"]).parsed_data
    assert check.app is not None and check.app.slug == "github-actions"
    assert (check.name, check.conclusion, check.output.title) == (
        "test",
        "failure",
        "1 test failed",
    )
    assert check.output.annotations_count == 1
    (note,) = checks.list_annotations("octo", "hello", job["id"]).parsed_data
    assert (note.path, note.start_line, note.end_line) == ("src/app.py", 2, 2)
    assert (note.annotation_level, note.message, note.title) == (
        "failure",
        "assert 2 == 3",
        "test_b",
    )
    assert note.blob_href.endswith("/src/app.py")


def test_the_suite_of_a_run_lists_its_jobs_and_rolls_up_their_conclusion(hub: Hub) -> None:
    checks = hub.installed.rest.checks
    run_id = failing_run(hub)
    suite_id = hub.installed.rest.actions.get_workflow_run("octo", "hello", run_id).parsed_data
    suites = checks.list_suites_for_ref("octo", "hello", "fix").parsed_data
    (suite,) = suites.check_suites
    assert (suite.id, suite.conclusion, suite.status) == (
        suite_id.check_suite_id, "failure", "completed",
    )  # fmt: skip
    assert [pull.number for pull in suite.pull_requests or []] == [1]
    assert checks.get_suite("octo", "hello", suite.id).parsed_data.latest_check_runs_count == 2
    runs = checks.list_for_suite("octo", "hello", suite.id).parsed_data
    assert sorted(run.name for run in runs.check_runs) == ["lint", "test"]
    failed = checks.list_for_suite("octo", "hello", suite.id, status="completed", check_name="test")
    assert [run.name for run in failed.parsed_data.check_runs] == ["test"]


def test_another_apps_suite_completes_when_its_runs_do(hub: Hub) -> None:
    emu, checks = hub.emu, hub.installed.rest.checks
    suite = emu.add_check_suite(hub.repo, "main", app="circle", app_name="Circle")
    emu.add_check_run(hub.repo, "main", "build", conclusion=None, suite=suite)
    assert checks.get_suite("octo", "hello", suite).parsed_data.status == "in_progress"
    emu.add_check_run(hub.repo, "main", "unit", "timed_out", suite=suite)
    listed = checks.list_for_ref("octo", "hello", "main").parsed_data
    assert sorted((r.name, r.status) for r in listed.check_runs) == [
        ("build", "in_progress"), ("unit", "completed"),
    ]  # fmt: skip
    joined = emu.add_check_run(hub.repo, "main", "e2e", "success", app="circle")
    joined_suite = checks.get("octo", "hello", joined).parsed_data.check_suite
    assert joined_suite is not None and joined_suite.id == suite


def test_a_jobs_log_is_a_redirect_to_a_short_lived_plain_text_url(hub: Hub) -> None:
    job = hub.emu.workflow_jobs(hub.repo, failing_run(hub))[1]["id"]
    token = hub.emu.installation_token(hub.installation_id)
    url = f"{hub.emu.api_url}/repos/octo/hello/actions/jobs/{job}/logs"
    redirect = httpx.get(url, headers={"Authorization": f"token {token}"})
    assert redirect.status_code == 302
    location = redirect.headers["location"]
    assert location.startswith(hub.emu.web_url) and "/api/v3/" not in location
    text = httpx.get(location)
    assert (text.status_code, text.text) == (200, LOG)
    assert text.headers["content-type"].startswith("text/plain")
    logs = hub.installed.rest.actions.download_job_logs_for_workflow_run("octo", "hello", job)
    assert logs.text == LOG
    key = location.rsplit("/", 1)[-1]
    hub.emu.world.log_links[key] = (LOG, now() - LOG_LINK_LIFETIME)
    assert httpx.get(location).status_code == 403


def test_reading_ci_needs_the_permissions(hub: Hub) -> None:
    job = hub.emu.workflow_jobs(hub.repo, failing_run(hub))[1]["id"]
    blind = hub.emu.add_installation(hub.app_id, "octo2", permissions={"metadata": "read"})
    repo = hub.emu.add_repo("octo2", "hello", {"README.md": "x\n"}, blind)
    run = hub.emu.add_workflow_run(repo, "main", [FAILING_JOB])
    other_job = hub.emu.workflow_jobs(repo, run)[0]["id"]
    client = hub.client_for(blind)
    for call in (
        lambda: client.rest.actions.get_workflow_run("octo2", "hello", run),
        lambda: client.rest.actions.download_job_logs_for_workflow_run("octo2", "hello", other_job),
        lambda: client.rest.checks.get("octo2", "hello", other_job),
        lambda: client.rest.checks.list_annotations("octo2", "hello", other_job),
    ):
        with pytest.raises(RequestFailed) as refused:
            call()
        assert refused.value.response.status_code == 403
    with pytest.raises(RequestFailed) as hidden:
        hub.installed.rest.actions.get_job_for_workflow_run("octo2", "hello", other_job)
    assert hidden.value.response.status_code == 404
    with pytest.raises(RequestFailed) as missing:
        hub.installed.rest.checks.get("octo", "hello", job + 1000)
    assert missing.value.response.status_code == 404
    anonymous = httpx.get(f"{hub.emu.api_url}/repos/octo/hello/actions/jobs/{job}/logs")
    assert anonymous.status_code == 401


def test_jobs_and_annotations_are_paginated(hub: Hub) -> None:
    notes = [{"path": "a.py", "start_line": n, "message": f"E{n}"} for n in range(1, 36)]
    jobs = [{"name": f"shard-{n}"} for n in range(3)] + [{"name": "t", "annotations": notes}]
    run = hub.emu.add_workflow_run(hub.repo, "main", jobs)
    actions, checks = hub.installed.rest.actions, hub.installed.rest.checks
    first = actions.list_jobs_for_workflow_run("octo", "hello", run, per_page=2)
    assert first.parsed_data.total_count == 4 and 'rel="next"' in first.headers["link"]
    names = [j.name for j in hub.installed.rest.paginate(
        actions.list_jobs_for_workflow_run, map_func=lambda r: r.parsed_data.jobs,
        owner="octo", repo="hello", run_id=run, per_page=3,
    )]  # fmt: skip
    assert names == ["shard-0", "shard-1", "shard-2", "t"]
    job = hub.emu.workflow_jobs(hub.repo, run)[3]["id"]
    lines = [a.start_line for a in hub.installed.rest.paginate(
        checks.list_annotations, owner="octo", repo="hello", check_run_id=job,
    )]  # fmt: skip
    assert lines == list(range(1, 36))


def test_check_suite_and_workflow_run_webhooks_carry_the_state(hub: Hub) -> None:
    emu = hub.emu
    run_id = failing_run(hub)
    rest_run = hub.installed.rest.actions.get_workflow_run("octo", "hello", run_id).parsed_data
    suite_hook = emu.webhook(
        "check_suite", "completed", repo=hub.repo, sender="alice",
        check_suite=rest_run.check_suite_id,
    )  # fmt: skip
    suite = suite_hook["check_suite"]
    assert (suite["id"], suite["conclusion"], suite["head_branch"]) == (
        rest_run.check_suite_id, "failure", "fix",
    )  # fmt: skip
    assert suite["app"]["slug"] == "github-actions"
    assert [pull["number"] for pull in suite["pull_requests"]] == [1]
    assert suite_hook["installation"]["id"] == hub.installation_id
    run_hook = emu.webhook(
        "workflow_run", "completed", repo=hub.repo, sender="alice", workflow_run=run_id
    )
    run = run_hook["workflow_run"]
    assert (run["id"], run["conclusion"], run["head_sha"]) == (
        run_id, "failure", rest_run.head_sha,
    )  # fmt: skip
    assert run["jobs_url"].endswith(f"/actions/runs/{run_id}/jobs")
    assert run_hook["workflow"]["path"] == ".github/workflows/ci.yml"
    assert run_hook["workflow"]["id"] == run["workflow_id"]


@pytest.mark.parametrize("event", ["check_suite", "workflow_run"])
def test_webhooks_keep_the_examples_fields(hub: Hub, event: str) -> None:
    run_id = failing_run(hub)
    suite = hub.emu.world.repos["octo/hello"].workflow_runs[run_id].suite_id
    ids = {"check_suite": suite, "workflow_run": run_id}
    hook = hub.emu.webhook(event, "completed", repo=hub.repo, sender="alice", **{event: ids[event]})
    assert set(hook[event]) == set(example(event, "completed")[event])


def test_unknown_refs_and_ids_are_refused_at_set_up(tmp_path: Any) -> None:
    with GitHubEmulator(tmp_path / "github") as emu:
        emu.add_app(1)
        repo = emu.add_repo("octo", "hello", {"a": "b"}, emu.add_installation(1, "octo"))
        with pytest.raises(KeyError):
            emu.add_workflow_run(repo, "nope", [{"name": "t"}])
        with pytest.raises(ValueError, match="start_line"):
            emu.add_check_run(repo, "main", "t", annotations=[{"path": "a", "message": "m"}])
