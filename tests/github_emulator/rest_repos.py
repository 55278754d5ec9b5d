"""REST routes about a repository itself: the repo, collaborator permissions, refs, branches."""

from __future__ import annotations

import asyncio

from starlette.requests import Request
from starlette.responses import Response

from tests.github_emulator import bare_repos
from tests.github_emulator.auth import credential, is_user_token, user_role
from tests.github_emulator.errors import GitHubError, not_found
from tests.github_emulator.payloads import PERMISSION_OF_ROLE
from tests.github_emulator.routing import (
    RestRoute,
    payloads_of,
    repo_context,
    respond,
    user_repo_context,
    world_of,
)


async def get_repo(request: Request) -> Response:
    """The one repository route that takes a user token too (the app's sign-in asks it who may
    read what), answering with the user's `permissions`."""
    if is_user_token(credential(request.headers.get("authorization"))):
        token, repo = user_repo_context(request)
        return respond(payloads_of(request).full_repository(repo, user_role(token.user, repo)))
    _, repo = repo_context(request)
    return respond(payloads_of(request).full_repository(repo))


async def get_permission(request: Request) -> Response:
    _, repo = repo_context(request)
    user = world_of(request).users.get(request.path_params["username"])
    if user is None:
        raise not_found()
    role = repo.role_of(user.login)
    return respond(
        {
            "permission": PERMISSION_OF_ROLE[role],
            "role_name": role,
            "user": payloads_of(request).collaborator(user, role),
        }
    )


async def get_ref(request: Request) -> Response:
    _, repo = repo_context(request)
    ref = "refs/" + request.path_params["ref"]
    sha = await asyncio.to_thread(bare_repos.resolve, repo.path, ref)
    if sha is None:
        raise not_found()
    return respond(payloads_of(request).git_ref(repo, ref, sha))


async def get_branch(request: Request) -> Response:
    _, repo = repo_context(request)
    name = request.path_params["branch"]
    sha = await asyncio.to_thread(bare_repos.resolve, repo.path, f"refs/heads/{name}")
    if sha is None:
        raise GitHubError(404, "Branch not found")
    commit = await asyncio.to_thread(bare_repos.commit, repo.path, sha)
    return respond(payloads_of(request).branch(repo, name, commit))


routes = [
    RestRoute("GET", "/repos/{owner}/{repo}", get_repo, {200, 401, 404}),
    RestRoute(
        "GET",
        "/repos/{owner}/{repo}/collaborators/{username}/permission",
        get_permission,
        {200, 401, 404},
    ),
    RestRoute("GET", "/repos/{owner}/{repo}/git/ref/{ref}", get_ref, {200, 401, 404}),
    RestRoute("GET", "/repos/{owner}/{repo}/branches/{branch}", get_branch, {200, 401, 404}),
]
