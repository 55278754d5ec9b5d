"""REST routes an app calls with its JWT: itself, its installations, installation tokens."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from tests.github_emulator.auth import app_from_jwt, issue_token
from tests.github_emulator.errors import not_found, validation_failed
from tests.github_emulator.routing import (
    RestRoute,
    json_object,
    payloads_of,
    respond,
    world_of,
)
from tests.github_emulator.state import App, Installation, Repo


def authenticated_app(request: Request) -> App:
    return app_from_jwt(world_of(request), request.headers.get("authorization"))


def installation_of(request: Request, app: App) -> Installation:
    installation_id = str(request.path_params["installation_id"])
    installation = world_of(request).installations.get(
        int(installation_id) if installation_id.isdigit() else -1
    )
    if installation is None or installation.app is not app:
        raise not_found()
    return installation


async def get_app(request: Request) -> Response:
    return respond(payloads_of(request).app(authenticated_app(request)))


async def list_installations(request: Request) -> Response:
    app = authenticated_app(request)
    installations = [i for i in world_of(request).installations.values() if i.app is app]
    return respond([payloads_of(request).installation(i) for i in installations])


async def get_installation(request: Request) -> Response:
    installation = installation_of(request, authenticated_app(request))
    return respond(payloads_of(request).installation(installation))


async def create_access_token(request: Request) -> Response:
    installation = installation_of(request, authenticated_app(request))
    body = await json_object(request)
    world = world_of(request)
    repos = narrowed_repos(world.repos_of(installation), body)
    token = issue_token(world, installation, repos)
    return respond(payloads_of(request).token(token, repos), status=201)


def narrowed_repos(available: list[Repo], body: dict[str, object]) -> list[Repo] | None:
    """The repos a token is limited to by `repositories`/`repository_ids`; None: all of them."""
    names, ids = body.get("repositories"), body.get("repository_ids")
    if names is None and ids is None:
        return None
    chosen: list[Repo] = []
    for field, wanted, key in (
        ("repositories", names, lambda repo: repo.name),
        ("repository_ids", ids, lambda repo: repo.id),
    ):
        if wanted is None:
            continue
        if not isinstance(wanted, list):
            raise validation_failed("Installation", field)
        for value in wanted:
            match = [repo for repo in available if key(repo) == value]
            if not match:
                raise validation_failed("Installation", field)
            chosen.extend(repo for repo in match if repo not in chosen)
    return chosen


async def get_repo_installation(request: Request) -> Response:
    app = authenticated_app(request)
    params = request.path_params
    repo = world_of(request).repo(f"{params['owner']}/{params['repo']}")
    if repo is None or repo.installation is None or repo.installation.app is not app:
        raise not_found()
    return respond(payloads_of(request).installation(repo.installation))


routes = [
    RestRoute("GET", "/app", get_app, {200, 401}),
    RestRoute("GET", "/app/installations", list_installations, {200, 401}),
    RestRoute("GET", "/app/installations/{installation_id}", get_installation, {200, 401, 404}),
    RestRoute(
        "POST",
        "/app/installations/{installation_id}/access_tokens",
        create_access_token,
        {201, 400, 401, 404, 422},
    ),
    RestRoute("GET", "/repos/{owner}/{repo}/installation", get_repo_installation, {200, 401, 404}),
]
