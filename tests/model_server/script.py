"""The script a ScriptedModelServer replays: one turn per chat-completion request."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

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


Turn = str | Reply | Fail


def as_turn(turn: Turn) -> Reply | Fail:
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
