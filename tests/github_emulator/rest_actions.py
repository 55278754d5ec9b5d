"""REST routes on GitHub Actions: workflow runs, their jobs, and a job's log by redirect."""

from __future__ import annotations

import asyncio
import secrets
from datetime import timedelta

from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from tests.github_emulator import ci
from tests.github_emulator.auth import require_permission
from tests.github_emulator.errors import not_found
from tests.github_emulator.routing import (
    RestRoute,
    int_param,
    paginate,
    payloads_of,
    repo_context,
    respond,
    world_of,
)
from tests.github_emulator.state import Job, Repo, WorkflowRun, now

LOG_LINK_LIFETIME = timedelta(minutes=1)
"""How long a log download URL works, as GitHub documents for its redirect."""
LOG_PATH = "/_blobs/job-logs"


async def get_workflow_run(request: Request) -> Response:
    token, repo = repo_context(request)
    require_permission(token, "actions", "read")
    run = workflow_run_in(repo, int_param(request, "run_id"))
    payload = await asyncio.to_thread(ci.workflow_run_payload, payloads_of(request), repo, run)
    return respond(payload)


async def list_jobs(request: Request) -> Response:
    token, repo = repo_context(request)
    require_permission(token, "actions", "read")
    run = workflow_run_in(repo, int_param(request, "run_id"))
    jobs = [repo.jobs[job_id] for job_id in run.job_ids]
    page, headers = paginate(request, jobs)
    payloads = payloads_of(request)
    rendered = [payloads.job(repo, job) for job in page]
    return respond({"total_count": len(jobs), "jobs": rendered}, headers=headers)


async def get_job(request: Request) -> Response:
    token, repo = repo_context(request)
    require_permission(token, "actions", "read")
    job = job_in(repo, int_param(request, "job_id"))
    return respond(payloads_of(request).job(repo, job))


async def download_job_logs(request: Request) -> Response:
    """302 to a short-lived, unauthenticated URL holding the log, as GitHub's blob storage."""
    token, repo = repo_context(request)
    require_permission(token, "actions", "read")
    job = job_in(repo, int_param(request, "job_id"))
    world = world_of(request)
    key = secrets.token_urlsafe(24)
    with world.lock:
        world.log_links[key] = (job.log, now() + LOG_LINK_LIFETIME)
    location = f"{payloads_of(request).web}{LOG_PATH}/{key}"
    return RedirectResponse(location, status_code=302)


async def serve_log(request: Request) -> Response:
    found = world_of(request).log_links.get(request.path_params["key"])
    if found is None or found[1] <= now():
        return PlainTextResponse("AuthenticationFailed: the link is unknown or expired", 403)
    return PlainTextResponse(found[0])


def workflow_run_in(repo: Repo, run_id: int) -> WorkflowRun:
    run = repo.workflow_runs.get(run_id)
    if run is None:
        raise not_found()
    return run


def job_in(repo: Repo, job_id: int) -> Job:
    job = repo.jobs.get(job_id)
    if job is None:
        raise not_found()
    return job


RUN = "/repos/{owner}/{repo}/actions/runs/{run_id}"
JOB = "/repos/{owner}/{repo}/actions/jobs/{job_id}"
READ = {200, 401, 403, 404}

routes = [
    RestRoute("GET", RUN, get_workflow_run, READ),
    RestRoute("GET", f"{RUN}/jobs", list_jobs, READ),
    RestRoute("GET", JOB, get_job, READ),
    RestRoute("GET", f"{JOB}/logs", download_job_logs, {302, 401, 403, 404}),
]

blob_routes = [Route(f"{LOG_PATH}/{{key}}", serve_log, methods=["GET"])]
"""The storage host's side: no API prefix and no credentials, like GitHub's signed blob URLs."""
