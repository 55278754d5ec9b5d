"""REST routes a person's user-to-server token calls: who they are, and which of the app's
installations and repositories they reach through it."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from tests.github_emulator.auth import user_token
from tests.github_emulator.errors import not_found
from tests.github_emulator.routing import (
    RestRoute,
    int_param,
    paginate,
    payloads_of,
    respond,
    world_of,
)
from tests.github_emulator.state import Installation, Repo, UserToken, World


async def get_user(request: Request) -> Response:
    world = world_of(request)
    user = user_token(world, request.headers.get("authorization")).user
    owned = [repo for repo in world.repos.values() if repo.owner is user]
    private = sum(1 for repo in owned if repo.private)
    return respond(payloads_of(request).private_user(user, len(owned) - private, private))


async def list_installations(request: Request) -> Response:
    world = world_of(request)
    token = user_token(world, request.headers.get("authorization"))
    installations = installations_of(world, token)
    page, headers = paginate(request, installations)
    payloads = payloads_of(request)
    rendered = [payloads.installation(installation) for installation in page]
    return respond({"total_count": len(installations), "installations": rendered}, headers=headers)


async def list_repositories(request: Request) -> Response:
    world = world_of(request)
    token = user_token(world, request.headers.get("authorization"))
    wanted = int_param(request, "installation_id")
    installation = next((i for i in installations_of(world, token) if i.id == wanted), None)
    if installation is None:
        raise not_found()
    repos = repos_of(world, token, installation)
    page, headers = paginate(request, repos)
    payloads = payloads_of(request)
    login = token.user.login
    body = {
        "total_count": len(repos),
        "repository_selection": "selected",
        "repositories": [payloads.repository(repo, repo.role_of(login)) for repo in page],
    }
    return respond(body, headers=headers)


def installations_of(world: World, token: UserToken) -> list[Installation]:
    """The token's app's installations the user explicitly reaches: on their own account, or
    holding a repository they have a role on (public ones do not count, as GitHub documents)."""
    return [
        installation
        for installation in world.installations.values()
        if installation.app is token.app
        and (installation.account is token.user or repos_of(world, token, installation))
    ]


def repos_of(world: World, token: UserToken, installation: Installation) -> list[Repo]:
    login = token.user.login
    return [repo for repo in world.repos_of(installation) if repo.role_of(login) != "none"]


routes = [
    RestRoute("GET", "/user", get_user, {200, 401, 403}),
    RestRoute("GET", "/user/installations", list_installations, {200, 401, 403}),
    RestRoute(
        "GET",
        "/user/installations/{installation_id}/repositories",
        list_repositories,
        {200, 401, 403, 404},
    ),
]
