"""The emulator's ASGI app (REST, GraphQL, web and git routes, error shape, request log) and its
uvicorn thread."""

from __future__ import annotations

import socket
import threading
import time

import uvicorn
from starlette.applications import Starlette
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tests.github_emulator import (
    git_http,
    graphql_api,
    manifest_flow,
    oauth_flow,
    rest_actions,
    rest_app,
    rest_checks,
    rest_git,
    rest_hooks,
    rest_issues,
    rest_pulls,
    rest_repos,
    rest_reviews,
    rest_user,
    web_session,
)
from tests.github_emulator.errors import GitHubError, render
from tests.github_emulator.faults import FaultMiddleware, Faults
from tests.github_emulator.payloads import Payloads
from tests.github_emulator.rate_limits import RateLimitMiddleware, RateLimits
from tests.github_emulator.state import RequestRecord, World

REST_ROUTES = [
    *rest_app.routes,
    *rest_user.routes,
    *rest_hooks.routes,
    *manifest_flow.rest_routes,
    *rest_repos.routes,
    *rest_git.routes,
    *rest_issues.routes,
    *rest_pulls.routes,
    *rest_reviews.routes,
    *rest_checks.routes,
    *rest_actions.routes,
]


def build_app(
    world: World,
    payloads: Payloads,
    faults: Faults | None = None,
    rate_limits: RateLimits | None = None,
) -> Starlette:
    routes: list[BaseRoute] = [
        *REST_ROUTES,
        *graphql_api.routes,
        *manifest_flow.web_routes,
        *oauth_flow.routes,
        *web_session.routes,
        *git_http.routes,
        *rest_actions.blob_routes,
    ]
    app = Starlette(routes=routes, exception_handlers={GitHubError: render})
    app.state.world = world
    app.state.payloads = payloads
    # Faults sit inside the log, so a replaced or dropped answer is logged as the client saw it.
    app.add_middleware(RateLimitMiddleware, limits=rate_limits or RateLimits())
    app.add_middleware(FaultMiddleware, faults=faults or Faults())
    app.add_middleware(RequestLog, world=world)
    return app


class RequestLog:
    """ASGI middleware that appends every answered request to `world.requests`."""

    def __init__(self, app: ASGIApp, world: World) -> None:
        self.app = app
        self.world = world

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500
        body = bytearray()

        async def remember_body() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                body.extend(message.get("body", b""))
            return message

        async def remember_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, remember_body, remember_status)
        finally:
            headers = dict(scope["headers"])
            record = RequestRecord(
                method=scope["method"],
                path=scope["path"],
                query=scope["query_string"].decode(),
                status=status,
                auth=auth_kind(headers.get(b"authorization", b"").decode()),
                body=bytes(body),
                headers=tuple(
                    (name.decode("latin-1"), value.decode("latin-1"))
                    for name, value in scope["headers"]
                    if name.lower() != b"authorization"
                ),
            )
            with self.world.lock:
                self.world.requests.append(record)


def auth_kind(authorization: str) -> str:
    scheme, _, value = authorization.partition(" ")
    if not value:
        return "none"
    if scheme.lower() == "basic":
        return "basic"
    if value.startswith("ghu_"):
        return "user"
    # JWTs have three dot-separated parts; installation tokens have none.
    return "app" if value.count(".") == 2 else "installation"


class ServerThread:
    """uvicorn serving an ASGI app on a free loopback port, in a daemon thread."""

    def __init__(self) -> None:
        self.socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.socket.bind(("127.0.0.1", 0))
        self.port: int = self.socket.getsockname()[1]
        self.server: uvicorn.Server | None = None
        self.thread: threading.Thread | None = None

    def start(self, app: ASGIApp, timeout: float = 10.0) -> None:
        config = uvicorn.Config(app, log_level="warning", lifespan="off", access_log=False)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self.socket]}, daemon=True
        )
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the GitHub emulator did not start")
            time.sleep(0.01)

    def stop(self) -> None:
        if self.server is not None and self.thread is not None:
            self.server.should_exit = True
            self.thread.join(timeout=10)
        self.socket.close()
