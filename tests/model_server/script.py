"""The script a ScriptedModelServer replays: one turn per chat-completion request."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from tests.model_server.config import QUIRKS


@dataclass(frozen=True)
class Reply:
    """The raw text the model generates for this turn, optionally checked against the request."""

    text: str
    delay: float = 0.0
    """Seconds to wait before answering (longer than the client's timeout forces a timeout)."""
    expect_in_last_message: str | None = None
    """A string the request's last message must contain (e.g. a tool result); else HTTP 500."""
    reasoning: str | None = None
    """Thinking generated before `text`: in the server's reasoning field with the reasoning
    parser on, inline as `<think>...</think>` at the start of `content` with it off."""
    expect_reasoning_back: bool = False
    """Answer 500 (and record a failure) unless every reasoning this server sent earlier comes
    back in a field it reads (or inline in `content`)."""
    quirk: str | tuple[str, ...] | None = None
    """Garbling modes for this turn only (see tests.model_server.config), on top of the server's."""

    def __post_init__(self) -> None:
        unknown = self.quirks - QUIRKS
        if unknown:
            raise ValueError(f"unknown quirks {sorted(unknown)}; known: {sorted(QUIRKS)}")

    @property
    def quirks(self) -> frozenset[str]:
        if self.quirk is None:
            return frozenset()
        return frozenset((self.quirk,) if isinstance(self.quirk, str) else self.quirk)


@dataclass(frozen=True)
class Fail:
    """An HTTP error answer for this turn."""

    status: int
    message: str = "scripted failure"
    delay: float = 0.0
    retry_after: int | None = None
    """Seconds sent in a `Retry-After` header (a gateway's 503 in front of a restarting server,
    a rate limiter's 429)."""


BodyFault = Literal["empty", "invalid_json", "cut_off"]


@dataclass(frozen=True)
class BadBody:
    """A 200 whose body is no chat completion: what proxies and dying servers send.

    "empty": no body at all. "invalid_json": the completion cut short, with a Content-Length
    that matches what is sent (a buffering proxy that lost the rest). "cut_off": the headers
    promise the whole completion and the connection closes half way through the body (the
    server died while sending; the client reads "peer closed connection without sending
    complete message body")."""

    kind: BodyFault
    delay: float = 0.0


@dataclass(frozen=True)
class Outage:
    """The server goes away at this request, as a killed or restarted process does: this
    request's connection is reset unanswered, every other open connection with it, and the port
    refuses connections. After `back_after` seconds a restarted server listens on the same port
    (same script position, cold prefix cache, counters from zero); None: it never comes back."""

    back_after: float | None = None
    delay: float = 0.0


Turn = str | Reply | Fail | BadBody | Outage


def as_turn(turn: Turn) -> Reply | Fail | BadBody | Outage:
    return Reply(turn) if isinstance(turn, str) else turn


def message_text(message: dict[str, Any]) -> str:
    """The text of a chat message, whether its content is a string or a list of parts."""
    content = message.get("content")
    if isinstance(content, list):
        return "".join(part.get("text", "") for part in content if isinstance(part, dict))
    return content or ""


def unmet_expectation(turn: Reply, request: dict[str, Any]) -> str | None:
    if turn.expect_in_last_message is None:
        return None
    messages = request.get("messages") or [{}]
    last = message_text(messages[-1])
    if turn.expect_in_last_message in last:
        return None
    return f"expected {turn.expect_in_last_message!r} in the last message, got {last[-500:]!r}"
