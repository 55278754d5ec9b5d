"""GitHub's primary rate limits on the REST and GraphQL APIs: every answer says what is left
(`x-ratelimit-*`), and a caller past its limit gets GitHub's 403 until the window resets.

Counted per credential (an installation token, a user token, an app JWT; anonymous callers by
address) per hour, as GitHub does; `limit` is 5,000 as for an installation, and a test may
lower it (`emulator.rate_limit`) to see the app run out.
"""

from __future__ import annotations

import json
import threading
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

WINDOW = 3600
ANONYMOUS_LIMIT = 60
EXCEEDED = "API rate limit exceeded for installation. Check out the documentation for more details."
DOCS = "https://docs.github.com/rest/overview/resources-in-the-rest-api#rate-limiting"


class RateLimits:
    """The counters; safe to read and change from the test's thread."""

    def __init__(self, limit: int = 5000) -> None:
        self.limit = limit
        self._lock = threading.Lock()
        self._used: dict[tuple[str, str], tuple[int, int]] = {}
        """(credential, resource) → (used, reset time)."""

    def take(self, credential: str, resource: str, limit: int) -> tuple[int, int, int] | None:
        """One request: (limit, used, reset), or None when the limit was already reached."""
        now = int(time.time())
        with self._lock:
            used, reset = self._used.get((credential, resource), (0, now + WINDOW))
            if reset <= now:
                used, reset = 0, now + WINDOW
            if used >= limit:
                return None
            self._used[(credential, resource)] = (used + 1, reset)
            return limit, used + 1, reset

    def reset_time(self, credential: str, resource: str) -> int:
        with self._lock:
            return self._used.get((credential, resource), (0, int(time.time())))[1]


class RateLimitMiddleware:
    """Adds the headers to every API answer, and answers 403 past the limit."""

    def __init__(self, app: ASGIApp, limits: RateLimits) -> None:
        self.app = app
        self.limits = limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        if not path.startswith("/api/"):
            await self.app(scope, receive, send)
            return
        resource = "graphql" if path.startswith("/api/graphql") else "core"
        headers = dict(scope.get("headers") or [])
        authorization = headers.get(b"authorization", b"").decode(errors="replace")
        client = scope.get("client") or ("", 0)
        credential = authorization or f"address {client[0]}"
        limit = self.limits.limit if authorization else ANONYMOUS_LIMIT
        taken = self.limits.take(credential, resource, limit)
        if taken is None:
            reset = self.limits.reset_time(credential, resource)
            await _exceeded(send, limit, reset, resource)
            return
        limit, used, reset = taken
        extra = [
            (b"x-ratelimit-limit", str(limit).encode()),
            (b"x-ratelimit-remaining", str(limit - used).encode()),
            (b"x-ratelimit-reset", str(reset).encode()),
            (b"x-ratelimit-used", str(used).encode()),
            (b"x-ratelimit-resource", resource.encode()),
        ]

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                known = {name.lower() for name, _ in message.get("headers", [])}
                added = [(name, value) for name, value in extra if name not in known]
                message = {**message, "headers": [*message.get("headers", []), *added]}
            await send(message)

        await self.app(scope, receive, with_headers)


async def _exceeded(send: Send, limit: int, reset: int, resource: str) -> None:
    body = json.dumps({"message": EXCEEDED, "documentation_url": DOCS}).encode()
    headers = [
        (b"content-type", b"application/json; charset=utf-8"),
        (b"x-ratelimit-limit", str(limit).encode()),
        (b"x-ratelimit-remaining", b"0"),
        (b"x-ratelimit-reset", str(reset).encode()),
        (b"x-ratelimit-used", str(limit).encode()),
        (b"x-ratelimit-resource", resource.encode()),
    ]
    await send({"type": "http.response.start", "status": 403, "headers": headers})
    await send({"type": "http.response.body", "body": body})
