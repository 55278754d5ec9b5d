"""REST routes on check runs and suites: create, update, read, list for a commit or a suite,
annotations; GitHub's output limits."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from tests.github_emulator import bare_repos, ci
from tests.github_emulator.auth import require_permission
from tests.github_emulator.errors import GitHubError, not_found, validation_failed
from tests.github_emulator.payloads import suite_of
from tests.github_emulator.routing import (
    RestRoute,
    int_param,
    json_object,
    paginate,
    payloads_of,
    repo_context,
    respond,
    world_of,
)
from tests.github_emulator.state import CheckRun, CheckSuite, Repo, now

STATUSES = ("queued", "in_progress", "completed", "waiting", "requested", "pending")
CONCLUSIONS = (
    "action_required",
    "cancelled",
    "failure",
    "neutral",
    "success",
    "skipped",
    "stale",
    "timed_out",
)
MAX_OUTPUT = 65535
"""Characters GitHub accepts in `output.summary` and in `output.text`."""


async def commit_sha(repo: Repo, ref: str) -> str | None:
    found = await asyncio.to_thread(bare_repos.object_type_and_sha, repo.path, f"{ref}^{{commit}}")
    return None if found is None else found[1]


def no_commit(ref: str) -> GitHubError:
    return GitHubError(422, f"No commit found for SHA: {ref}")


async def create_check_run(request: Request) -> Response:
    token, repo = repo_context(request)
    require_permission(token, "checks")
    body = await json_object(request)
    for field in ("name", "head_sha"):
        if not isinstance(body.get(field), str) or not body[field]:
            raise validation_failed("CheckRun", field, "missing_field")
    sha = await commit_sha(repo, body["head_sha"])
    if sha is None or not sha.startswith(body["head_sha"].lower()):
        raise no_commit(body["head_sha"])
    world = world_of(request)
    run = CheckRun(world.new_id(), token.installation.app, sha, body["name"])
    apply(run, body)
    with world.lock:
        repo.check_runs[run.id] = run
    return respond(payloads_of(request).check_run(repo, run), status=201)


async def update_check_run(request: Request) -> Response:
    token, repo = repo_context(request)
    require_permission(token, "checks")
    run = repo.check_runs.get(int_param(request, "check_run_id"))
    if run is None:
        raise not_found()
    body = await json_object(request)
    if "name" in body and (not isinstance(body["name"], str) or not body["name"]):
        raise validation_failed("CheckRun", "name")
    apply(run, body)
    return respond(payloads_of(request).check_run(repo, run))


def apply(run: CheckRun, body: dict[str, Any]) -> None:
    """Validate every field first, then change the run, so a 422 leaves it untouched."""
    status = body.get("status", run.status)
    conclusion = body.get("conclusion", run.conclusion)
    if status not in STATUSES:
        raise validation_failed("CheckRun", "status")
    if conclusion is not None and conclusion not in CONCLUSIONS:
        raise validation_failed("CheckRun", "conclusion")
    if "conclusion" in body and conclusion is not None:
        status = "completed"
    if status == "completed" and conclusion is None:
        raise validation_failed("CheckRun", "conclusion", "missing_field")
    output = checked_output(body.get("output"), run.output)
    times = {field: moment(body, field) for field in ("started_at", "completed_at")}
    for field in ("details_url", "external_id"):
        if field in body and not isinstance(body[field], str | None):
            raise validation_failed("CheckRun", field)
    run.name = body.get("name", run.name)
    run.status, run.conclusion, run.output = status, conclusion, output
    run.details_url = body.get("details_url", run.details_url)
    run.external_id = body.get("external_id", run.external_id)
    run.started_at = times["started_at"] or run.started_at
    run.completed_at = times["completed_at"] or run.completed_at
    if status == "completed" and run.completed_at is None:
        run.completed_at = now()


def checked_output(output: object, current: dict[str, str | None]) -> dict[str, str | None]:
    if output is None:
        return current
    if not isinstance(output, dict):
        raise validation_failed("CheckRun", "output")
    for field in ("title", "summary"):
        if not isinstance(output.get(field), str):
            raise validation_failed("CheckRun", f"output.{field}", "missing_field")
    text = output.get("text")
    if text is not None and not isinstance(text, str):
        raise validation_failed("CheckRun", "output.text")
    for value in (output["summary"], text):
        if value is not None and len(value) > MAX_OUTPUT:
            raise GitHubError(
                422,
                f"Invalid request.\n\nOnly {MAX_OUTPUT} characters are allowed; "
                f"{len(value)} were supplied.",
            )
    return {"title": output["title"], "summary": output["summary"], "text": text}


def moment(body: dict[str, Any], field: str) -> datetime | None:
    value = body.get(field)
    if value is None:
        return None
    try:
        return datetime.fromisoformat(str(value)).replace(microsecond=0)
    except ValueError:
        raise validation_failed("CheckRun", field) from None


async def list_for_ref(request: Request) -> Response:
    token, repo = repo_context(request)
    require_permission(token, "checks", "read")
    ref = request.path_params["ref"]
    sha = await commit_sha(repo, ref)
    if sha is None:
        raise no_commit(ref)
    runs = [run for run in repo.check_runs.values() if run.head_sha == sha]
    return listed_runs(request, repo, runs)


async def list_for_suite(request: Request) -> Response:
    token, repo = repo_context(request)
    require_permission(token, "checks", "read")
    suite = suite_in(repo, int_param(request, "check_suite_id"))
    runs = [run for run in repo.check_runs.values() if suite_of(run) == suite.id]
    return listed_runs(request, repo, runs)


def listed_runs(request: Request, repo: Repo, runs: list[CheckRun]) -> Response:
    """The runs the query's check_name, status, app_id and filter keep, newest first, paged."""
    query = request.query_params
    if "check_name" in query:
        runs = [run for run in runs if run.name == query["check_name"]]
    if "status" in query:
        runs = [run for run in runs if run.status == query["status"]]
    if query.get("app_id", "").isdigit():
        runs = [run for run in runs if run.app.id == int(query["app_id"])]
    if query.get("filter", "latest") == "latest":
        latest = {(run.app.id, run.name): run for run in sorted(runs, key=lambda r: r.id)}
        runs = list(latest.values())
    runs.sort(key=lambda run: run.id, reverse=True)
    page, headers = paginate(request, runs)
    payloads = payloads_of(request)
    rendered = [payloads.check_run(repo, run) for run in page]
    return respond({"total_count": len(runs), "check_runs": rendered}, headers=headers)


async def get_check_run(request: Request) -> Response:
    token, repo = repo_context(request)
    require_permission(token, "checks", "read")
    run = run_in(repo, int_param(request, "check_run_id"))
    return respond(payloads_of(request).check_run(repo, run))


async def list_annotations(request: Request) -> Response:
    token, repo = repo_context(request)
    require_permission(token, "checks", "read")
    run = run_in(repo, int_param(request, "check_run_id"))
    page, headers = paginate(request, run.annotations)
    payloads = payloads_of(request)
    return respond([payloads.annotation(repo, run, item) for item in page], headers=headers)


async def get_check_suite(request: Request) -> Response:
    token, repo = repo_context(request)
    require_permission(token, "checks", "read")
    suite = suite_in(repo, int_param(request, "check_suite_id"))
    return respond(await asyncio.to_thread(ci.suite_payload, payloads_of(request), repo, suite))


async def list_suites_for_ref(request: Request) -> Response:
    token, repo = repo_context(request)
    require_permission(token, "checks", "read")
    ref = request.path_params["ref"]
    sha = await commit_sha(repo, ref)
    if sha is None:
        raise no_commit(ref)
    query = request.query_params
    suites = [suite for suite in repo.check_suites.values() if suite.head_sha == sha]
    if query.get("app_id", "").isdigit():
        suites = [suite for suite in suites if suite.app.id == int(query["app_id"])]
    if "check_name" in query:
        named = {
            run.suite_id for run in repo.check_runs.values() if run.name == query["check_name"]
        }
        suites = [suite for suite in suites if suite.id in named]
    suites.sort(key=lambda suite: suite.id)
    page, headers = paginate(request, suites)
    payloads = payloads_of(request)
    rendered = [await asyncio.to_thread(ci.suite_payload, payloads, repo, s) for s in page]
    return respond({"total_count": len(suites), "check_suites": rendered}, headers=headers)


def run_in(repo: Repo, run_id: int) -> CheckRun:
    run = repo.check_runs.get(run_id)
    if run is None:
        raise not_found()
    return run


def suite_in(repo: Repo, suite_id: int) -> CheckSuite:
    suite = repo.check_suites.get(suite_id)
    if suite is None:
        raise not_found()
    return suite


RUNS = "/repos/{owner}/{repo}/check-runs"
SUITES = "/repos/{owner}/{repo}/check-suites"
READ = {200, 401, 403, 404}
WRITE = {400, 401, 403, 404, 422}

routes = [
    RestRoute("POST", RUNS, create_check_run, {201, *WRITE}),
    RestRoute("PATCH", f"{RUNS}/{{check_run_id}}", update_check_run, {200, *WRITE}),
    RestRoute(
        "GET",
        "/repos/{owner}/{repo}/commits/{ref}/check-runs",
        list_for_ref,
        {200, 401, 403, 404, 422},
    ),
    RestRoute("GET", f"{RUNS}/{{check_run_id}}", get_check_run, READ),
    RestRoute("GET", f"{RUNS}/{{check_run_id}}/annotations", list_annotations, READ),
    RestRoute(
        "GET",
        "/repos/{owner}/{repo}/commits/{ref}/check-suites",
        list_suites_for_ref,
        {*READ, 422},
    ),
    RestRoute("GET", f"{SUITES}/{{check_suite_id}}", get_check_suite, READ),
    RestRoute("GET", f"{SUITES}/{{check_suite_id}}/check-runs", list_for_suite, READ),
]
