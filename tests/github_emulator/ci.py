"""Simulated CI: check suites and runs by other apps, GitHub Actions workflow runs and jobs."""

from __future__ import annotations

from typing import Any

from tests.github_emulator import bare_repos, pull_refs
from tests.github_emulator.payloads import JSON, Payloads
from tests.github_emulator.state import (
    App,
    CheckRun,
    CheckSuite,
    Job,
    Repo,
    WorkflowRun,
    World,
    now,
)

ACTIONS_APP = ("github-actions", "GitHub Actions")
"""Slug and name of the app whose check runs are Actions jobs."""


def other_app(world: World, slug: str, name: str) -> App:
    """The app with that slug (a CI provider, say), registered on first mention."""
    with world.lock:
        for app in world.apps.values():
            if app.slug == slug:
                return app
        owner = world.user(slug.split("-")[0], "Organization")
        app = App(world.new_id(), slug, owner, b"", name=name)
        world.apps[app.id] = app
        return app


def commit_of(repo: Repo, ref: str) -> str:
    found = bare_repos.object_type_and_sha(repo.path, f"{ref}^{{commit}}")
    if found is None:
        raise KeyError(f"no commit {ref} in {repo.full_name}")
    return found[1]


def add_check_suite(
    world: World,
    repo: Repo,
    head_sha: str,
    app: App,
    head_branch: str | None = None,
    conclusion: str | None = None,
) -> CheckSuite:
    status = "queued" if conclusion is None else "completed"
    suite = CheckSuite(world.new_id(), app, head_sha, head_branch, status, conclusion)
    with world.lock:
        repo.check_suites[suite.id] = suite
    return suite


def suite_for(world: World, repo: Repo, head_sha: str, app: App) -> CheckSuite:
    """The app's suite for the commit, made on first use, as GitHub groups check runs."""
    for suite in repo.check_suites.values():
        if suite.app is app and suite.head_sha == head_sha:
            return suite
    return add_check_suite(world, repo, head_sha, app)


def add_check_run(
    world: World,
    repo: Repo,
    suite: CheckSuite,
    name: str,
    conclusion: str | None,
    output: dict[str, str | None] | None = None,
    annotations: list[dict[str, Any]] | None = None,
    run_id: int | None = None,
) -> CheckRun:
    """A check run in `suite`: completed when it has a conclusion, in progress otherwise."""
    run = CheckRun(run_id or world.new_id(), suite.app, suite.head_sha, name)
    run.suite_id = suite.id
    run.status = "in_progress" if conclusion is None else "completed"
    run.conclusion = conclusion
    run.completed_at = None if conclusion is None else now()
    run.output = {"title": None, "summary": None, "text": None, **(output or {})}
    run.annotations = [annotation(item) for item in annotations or []]
    with world.lock:
        repo.check_runs[run.id] = run
        refresh(suite, repo)
    return run


def annotation(item: dict[str, Any]) -> dict[str, Any]:
    missing = {"path", "start_line", "message"} - set(item)
    if missing:
        raise ValueError(f"an annotation needs {sorted(missing)}")
    return {"end_line": item["start_line"], "annotation_level": "failure", **item}


def refresh(suite: CheckSuite, repo: Repo) -> None:
    """A suite completes when all its runs did; it fails if any failed, as GitHub rolls up."""
    runs = [run for run in repo.check_runs.values() if run.suite_id == suite.id]
    suite.updated_at = now()
    if not runs or any(run.conclusion is None for run in runs):
        suite.status, suite.conclusion = "in_progress", None
        return
    conclusions = {run.conclusion or "" for run in runs}
    failed = conclusions & {"failure", "timed_out", "cancelled", "action_required"}
    suite.status = "completed"
    suite.conclusion = sorted(failed)[0] if failed else "success"


def add_workflow_run(
    world: World,
    repo: Repo,
    head_sha: str,
    head_branch: str | None,
    name: str,
    jobs: list[dict[str, Any]],
    path: str,
    event: str,
    actor: str,
) -> WorkflowRun:
    """A workflow run and its suite; each job is a check run of GitHub Actions with its id.

    A job: `name`, `conclusion` (None: still running), `steps` (names, or dicts with `name`
    and `conclusion`), `log` (text), and optionally `output` and `annotations` of its check run.
    """
    app = other_app(world, *ACTIONS_APP)
    suite = add_check_suite(world, repo, head_sha, app, head_branch)
    number = 1 + sum(1 for run in repo.workflow_runs.values() if run.path == path)
    run = WorkflowRun(
        world.new_id(), name, path, head_sha, head_branch, event, number, suite.id,
        world.user(actor),
    )  # fmt: skip
    for spec in jobs:
        check = add_check_run(
            world, repo, suite, spec["name"], spec.get("conclusion", "success"),
            spec.get("output"), spec.get("annotations"),
        )  # fmt: skip
        steps = [step(index, item) for index, item in enumerate(spec.get("steps", []), 1)]
        job = Job(check.id, run.id, steps, spec.get("log", ""))
        with world.lock:
            repo.jobs[job.id] = job
        run.job_ids.append(job.id)
    run.status, run.conclusion = suite.status, suite.conclusion
    with world.lock:
        repo.workflow_runs[run.id] = run
    return run


def step(number: int, item: str | dict[str, Any]) -> JSON:
    spec = {"name": item} if isinstance(item, str) else item
    conclusion = spec.get("conclusion", "success")
    moment = now().strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "name": spec["name"],
        "status": "in_progress" if conclusion is None else "completed",
        "conclusion": conclusion,
        "number": number,
        "started_at": moment,
        "completed_at": None if conclusion is None else moment,
    }


def linked_pulls(payloads: Payloads, repo: Repo, head_sha: str) -> list[JSON]:
    """Open pulls of the repository whose head is the commit, as GitHub lists them on a suite."""
    linked = []
    for issue in repo.issues.values():
        if issue.pull is None or issue.state != "open":
            continue
        head, base = pull_refs.head_and_base(repo, issue)
        if head == head_sha:
            linked.append(payloads.pull_minimal(repo, issue, head, base))
    return linked


def suite_payload(payloads: Payloads, repo: Repo, suite: CheckSuite) -> JSON:
    commit = bare_repos.commit(repo.path, suite.head_sha)
    pulls = linked_pulls(payloads, repo, suite.head_sha)
    return payloads.check_suite(repo, suite, commit, pulls)


def workflow_run_payload(payloads: Payloads, repo: Repo, run: WorkflowRun) -> JSON:
    commit = bare_repos.commit(repo.path, run.head_sha)
    pulls = linked_pulls(payloads, repo, run.head_sha)
    return payloads.workflow_run(repo, run, commit, pulls)
