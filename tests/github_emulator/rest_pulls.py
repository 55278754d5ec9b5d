"""REST routes on pull requests: list, create, get, update, request reviewers."""

from __future__ import annotations

import asyncio
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from tests.github_emulator import bare_repos, pull_refs
from tests.github_emulator.auth import require_permission
from tests.github_emulator.content_limit import count_creation
from tests.github_emulator.errors import (
    GitHubError,
    not_found,
    validation_failed,
    validation_message,
)
from tests.github_emulator.rest_issues import bot_user, check_length
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
from tests.github_emulator.state import Issue, PullRequest, Repo, now


def pull_of(request: Request, repo: Repo) -> Issue:
    issue = repo.issues.get(int_param(request, "pull_number"))
    if issue is None or issue.pull is None:
        raise not_found()
    return issue


async def render(request: Request, repo: Repo, issue: Issue, *, simple: bool = False) -> Any:
    """A pull's JSON with its head and base shas read from the bare repo now."""
    head_sha, base_sha = await asyncio.to_thread(pull_refs.head_and_base, repo, issue)
    payloads = payloads_of(request)
    if simple:
        return payloads.pull_simple(repo, issue, head_sha, base_sha)
    return payloads.pull(repo, issue, head_sha, base_sha)


def head_branch(repo: Repo, head: str) -> str | None:
    """The branch of a `head` (`owner:branch` or `branch`); None when another owner's."""
    owner, _, branch = head.rpartition(":")
    if owner and owner.lower() != repo.owner.login.lower():
        return None
    return branch


def from_head(repo: Repo, issue: Issue, head: str) -> bool:
    """Whether the pull comes from `head`: `owner:branch` (of a fork, maybe), or `branch`."""
    assert issue.pull is not None
    owner, _, branch = head.rpartition(":")
    wanted = (owner or repo.owner.login).lower()
    head_owner = (issue.pull.head_repo or repo).owner.login.lower()
    return issue.pull.head_ref == branch and head_owner == wanted


async def list_pulls(request: Request) -> Response:
    _, repo = repo_context(request)
    query = request.query_params
    state = query.get("state", "open")
    pulls = [issue for issue in repo.issues.values() if issue.pull is not None]
    if state != "all":
        pulls = [issue for issue in pulls if issue.state == state]
    if "head" in query:
        pulls = [issue for issue in pulls if from_head(repo, issue, query["head"])]
    if "base" in query:
        pulls = [issue for issue in pulls if issue.pull and issue.pull.base_ref == query["base"]]
    pulls.sort(key=lambda issue: issue.number, reverse=query.get("direction") != "asc")
    page, headers = paginate(request, pulls)
    rendered = [await render(request, repo, issue, simple=True) for issue in page]
    return respond(rendered, headers=headers)


async def create_pull(request: Request) -> Response:
    token, repo = repo_context(request)
    require_permission(token, "pull_requests")
    body = await json_object(request)
    title, head, base = body.get("title"), body.get("head"), body.get("base")
    for field, value in (("title", title), ("head", head), ("base", base)):
        if not isinstance(value, str) or not value:
            raise validation_failed("PullRequest", field, "missing_field")
    assert isinstance(head, str) and isinstance(base, str) and isinstance(title, str)
    branch = head_branch(repo, head)
    heads = await asyncio.to_thread(bare_repos.branches, repo.path)
    if branch is None or branch not in heads:
        raise validation_failed("PullRequest", "head")
    if base not in heads:
        raise validation_failed("PullRequest", "base")
    if heads[branch] == heads[base]:
        raise validation_message("PullRequest", f"No commits between {base} and {branch}")
    check_length("PullRequest", body.get("body") if isinstance(body.get("body"), str) else None)
    world = world_of(request)
    with world.lock:
        if any_open_pull(repo, branch, base):
            message = f"A pull request already exists for {repo.owner.login}:{branch}."
            raise validation_message("PullRequest", message)
        count_creation(world)
        issue = Issue(
            id=world.new_id(),
            number=world.next_number(repo),
            title=title,
            body=body.get("body") if isinstance(body.get("body"), str) else None,
            user=bot_user(request, token),
            pull=PullRequest(world.new_id(), branch, base, draft=bool(body.get("draft"))),
        )
        repo.issues[issue.number] = issue
    await asyncio.to_thread(pull_refs.sync, world, repo)
    location = f"{payloads_of(request).api}/repos/{repo.full_name}/pulls/{issue.number}"
    return respond(await render(request, repo, issue), status=201, headers={"Location": location})


def any_open_pull(repo: Repo, head: str, base: str) -> bool:
    """Whether a pull from `head`, a branch of the repository itself, is open into `base`."""
    return any(
        issue.pull.head_ref == head and issue.pull.base_ref == base
        for issue in repo.issues.values()
        if issue.pull is not None and issue.pull.head_repo is None and issue.state == "open"
    )


async def get_pull(request: Request) -> Response:
    _, repo = repo_context(request)
    return respond(await render(request, repo, pull_of(request, repo)))


async def update_pull(request: Request) -> Response:
    token, repo = repo_context(request)
    issue = pull_of(request, repo)
    require_permission(token, "pull_requests")
    body = await json_object(request)
    state = body.get("state", issue.state)
    if state not in ("open", "closed"):
        raise validation_failed("PullRequest", "state")
    for field in ("title", "body", "base"):
        if field in body and not isinstance(body[field], str):
            raise validation_failed("PullRequest", field)
    check_length("PullRequest", body.get("body"))
    issue.title = body.get("title", issue.title)
    issue.body = body.get("body", issue.body)
    assert issue.pull is not None
    issue.pull.base_ref = body.get("base", issue.pull.base_ref)
    if state != issue.state:
        issue.state = state
        issue.closed_at = now() if state == "closed" else None
    issue.updated_at = now()
    return respond(await render(request, repo, issue))


async def request_reviewers(request: Request) -> Response:
    token, repo = repo_context(request)
    issue = pull_of(request, repo)
    require_permission(token, "pull_requests")
    body = await json_object(request)
    logins = body.get("reviewers", [])
    if not isinstance(logins, list):
        raise validation_failed("PullRequest", "reviewers")
    world = world_of(request)
    reviewers = [world.users.get(str(login)) for login in logins]
    if any(user is None or repo.role_of(user.login) == "none" for user in reviewers):
        raise GitHubError(
            422,
            "Reviews may only be requested from collaborators. One or more of the users or "
            f"teams you specified is not a collaborator of the {repo.full_name} repository.",
        )
    assert issue.pull is not None
    for user in reviewers:
        if user is not None and user not in issue.pull.requested_reviewers:
            issue.pull.requested_reviewers.append(user)
    return respond(await render(request, repo, issue, simple=True), status=201)


PULLS = "/repos/{owner}/{repo}/pulls"
PULL = f"{PULLS}/{{pull_number}}"

routes = [
    RestRoute("GET", PULLS, list_pulls, {200, 401, 404}),
    RestRoute("POST", PULLS, create_pull, {201, 400, 401, 403, 404, 422}),
    RestRoute("GET", PULL, get_pull, {200, 401, 404}),
    RestRoute("PATCH", PULL, update_pull, {200, 400, 401, 403, 404, 422}),
    RestRoute(
        "POST",
        f"{PULL}/requested_reviewers",
        request_reviewers,
        {201, 400, 401, 403, 404, 422},
    ),
]
