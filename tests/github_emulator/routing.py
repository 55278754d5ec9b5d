"""What every REST route shares: its declared statuses, request context, bodies and pagination."""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any, TypeVar

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.github_emulator.auth import (
    installation_token,
    repo_for_token,
    repo_for_user_token,
    user_token,
)
from tests.github_emulator.errors import GitHubError
from tests.github_emulator.payloads import Payloads
from tests.github_emulator.state import Repo, Token, UserToken, World

API_PREFIX = "/api/v3"
SLASHED_PARAMS = ("ref", "branch", "path")
"""Path parameters that may hold slashes (heads/feature/x)."""

Endpoint = Callable[[Request], Awaitable[Response]]
T = TypeVar("T")


class RestRoute(Route):
    """A GitHub REST operation: its path as in the OpenAPI description and every status it sends."""

    def __init__(self, method: str, spec_path: str, endpoint: Endpoint, statuses: Iterable[int]):
        slashed = "|".join(SLASHED_PARAMS)
        path = API_PREFIX + re.sub(rf"\{{({slashed})\}}", r"{\1:path}", spec_path)
        super().__init__(path, endpoint, methods=[method])
        self.method = method
        self.spec_path = spec_path
        self.statuses = frozenset(statuses)


def world_of(request: Request) -> World:
    world: World = request.app.state.world
    return world


def payloads_of(request: Request) -> Payloads:
    payloads: Payloads = request.app.state.payloads
    return payloads


def repo_context(request: Request) -> tuple[Token, Repo]:
    """The installation token of the request and the repository of its path (401/404)."""
    world = world_of(request)
    token = installation_token(world, request.headers.get("authorization"))
    params = request.path_params
    return token, repo_for_token(world, token, params["owner"], params["repo"])


def user_repo_context(request: Request) -> tuple[UserToken, Repo]:
    """The user token of the request and the repository of its path, if both the user and
    the app may see it (401/403/404)."""
    world = world_of(request)
    token = user_token(world, request.headers.get("authorization"))
    params = request.path_params
    return token, repo_for_user_token(world, token, params["owner"], params["repo"])


def int_param(request: Request, name: str) -> int:
    value = request.path_params[name]
    if not str(value).isdigit():
        raise GitHubError(404, "Not Found")
    return int(value)


async def json_body(request: Request) -> Any:
    raw = await request.body()
    if not raw:
        return {}
    try:
        return json.loads(raw)
    except ValueError:
        raise GitHubError(400, "Problems parsing JSON") from None


async def json_object(request: Request) -> dict[str, Any]:
    body = await json_body(request)
    if not isinstance(body, dict):
        raise GitHubError(400, "Problems parsing JSON")
    return body


def paginate(request: Request, items: Sequence[T]) -> tuple[Sequence[T], dict[str, str]]:
    """One page of `items` by `page`/`per_page`, with GitHub's `Link` header when more follow."""
    per_page = min(max(_query_int(request, "per_page", 30), 1), 100)
    page = max(_query_int(request, "page", 1), 1)
    start = (page - 1) * per_page
    headers = {}
    if start + per_page < len(items):
        last = (len(items) + per_page - 1) // per_page
        base = str(request.url.remove_query_params("page"))
        joiner = "&" if "?" in base else "?"
        headers["Link"] = (
            f'<{base}{joiner}page={page + 1}>; rel="next", <{base}{joiner}page={last}>; rel="last"'
        )
    return items[start : start + per_page], headers


def _query_int(request: Request, name: str, default: int) -> int:
    value = request.query_params.get(name, "")
    return int(value) if value.isdigit() else default


def respond(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return JSONResponse(body, status_code=status, headers=headers)
