"""GitHub on a bad day: answers replaced by 502s or rate limits, slow answers, dropped
connections, and hooks that let a test act (kill a worker) at the moment a request arrives or
just before its answer leaves.

A fault matches requests by method and a regular expression over the path (REST paths begin
with `/api/v3`; git's smart HTTP paths end in `/git-upload-pack` or `/git-receive-pack`). It
applies to the next `times` matching requests (all of them while `times` is None) and counts
what it did, so a test can say how many faults it injected.
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from starlette.types import ASGIApp, Message, Receive, Scope, Send

SECONDARY_LIMIT = (
    "You have exceeded a secondary rate limit. Please wait a few minutes before you try again. "
    "If you reach out to GitHub Support for help, please include the request ID."
)
Hook = Callable[[str, str], None]
"""Called with (method, path) on the emulator's side, in a thread of its own."""


@dataclass
class Fault:
    """What happens to matching requests; `hits` counts the requests it applied to."""

    method: str
    path: str
    """A regular expression that must match the whole path."""
    body: str | None = None
    """Text the request's body must contain (e.g. a headline in a comment edit)."""
    status: int | None = None
    """Answer with this status (GitHub's error shape) instead of handling the request."""
    retry_after: int | None = None
    """The `retry-after` header sent with `status` (GitHub's secondary rate limit)."""
    delay: float = 0.0
    """Seconds to wait before handling the request (a slow GitHub)."""
    drop: bool = False
    """Handle the request, then cut the connection in the middle of the answer."""
    before: Hook | None = None
    """Called before the request is handled."""
    after: Hook | None = None
    """Called after the request was handled, before its answer is sent."""
    times: int | None = 1
    hits: int = 0
    _pattern: re.Pattern[str] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._pattern = re.compile(self.path)

    def matches(self, method: str, path: str, body: bytes | None) -> bool:
        if self.method not in ("*", method) or not self._pattern.fullmatch(path):
            return False
        if self.body is not None and (body is None or self.body.encode() not in body):
            return False
        return self.times is None or self.hits < self.times


class Faults:
    """The faults armed on one emulator; safe to change from the test's thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[Fault] = []

    def add(self, fault: Fault) -> Fault:
        with self._lock:
            self._faults.append(fault)
        return fault

    def remove(self, fault: Fault) -> None:
        with self._lock:
            if fault in self._faults:
                self._faults.remove(fault)

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    def take(self, method: str, path: str, body: bytes | None) -> Fault | None:
        """The first armed fault for this request, counted as hit."""
        with self._lock:
            for fault in self._faults:
                if fault.matches(method, path, body):
                    fault.hits += 1
                    return fault
        return None

    def read_body(self, method: str, path: str) -> bool:
        """Whether a fault for this request looks into its body."""
        with self._lock:
            return any(
                fault.body is not None and fault.matches(method, path, fault.body.encode())
                for fault in self._faults
            )


class FaultMiddleware:
    """ASGI middleware applying `Faults` in front of the emulator's routes."""

    def __init__(self, app: ASGIApp, faults: Faults) -> None:
        self.app = app
        self.faults = faults

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method, path = scope["method"], scope["path"]
        body = None
        if self.faults.read_body(method, path):
            body, receive = await _read(receive)
        fault = self.faults.take(method, path, body)
        if fault is None:
            await self.app(scope, receive, send)
            return
        if fault.delay:
            await asyncio.sleep(fault.delay)
        if fault.before is not None:
            await asyncio.to_thread(fault.before, method, path)
        if fault.status is not None:
            await _error(send, fault.status, fault.retry_after)
            return
        held: list[Message] = []

        async def hold(message: Message) -> None:
            held.append(message)

        await self.app(scope, receive, hold)
        if fault.after is not None:
            await asyncio.to_thread(fault.after, method, path)
        if fault.drop:
            # The status line and headers go out, the body never does: the server closes the
            # connection as one that reset mid-answer would.
            await send(next(m for m in held if m["type"] == "http.response.start"))
            return
        for message in held:
            await send(message)


async def _read(receive: Receive) -> tuple[bytes, Receive]:
    """The whole request body, and a `receive` that hands it to the app again."""
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if message["type"] != "http.request" or not message.get("more_body"):
            break
    body = b"".join(chunks)
    replayed = False

    async def replay() -> Message:
        nonlocal replayed
        if replayed:
            return await receive()
        replayed = True
        return {"type": "http.request", "body": body, "more_body": False}

    return body, replay


async def _error(send: Send, status: int, retry_after: int | None) -> None:
    message = {502: "Server Error"}.get(status, SECONDARY_LIMIT)
    body = json.dumps({"message": message, "documentation_url": DOCS}).encode()
    headers = [(b"content-type", b"application/json; charset=utf-8")]
    if retry_after is not None:
        headers.append((b"retry-after", str(retry_after).encode()))
    if status in (403, 429):
        headers.append((b"x-ratelimit-remaining", b"4999"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


DOCS = (
    "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api#about-secondary-rate-limits"
)
