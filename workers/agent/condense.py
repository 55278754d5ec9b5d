"""Condensation: elide older observations when the conversation nears the context window.

It rewrites history, so the server's prefix cache misses once; that is why it runs only near
the limit and never on every step.
"""

from __future__ import annotations

from typing import Any

ELIDED = "[older tool output elided to fit the context window ({chars} characters)]"
MIN_CHARS = 400


def is_observation(message: dict[str, Any]) -> bool:
    if message.get("role") == "tool":
        return True
    content = message.get("content")
    return (
        message.get("role") == "user" and isinstance(content, str) and "<tool_response>" in content
    )


def condense(messages: list[dict[str, Any]], keep_recent: int) -> int:
    """Elide long observations except the last `keep_recent`; returns how many characters
    shorter the conversation got."""
    observations = [i for i, message in enumerate(messages) if is_observation(message)]
    removed = 0
    for index in observations[: max(len(observations) - keep_recent, 0)]:
        content = str(messages[index].get("content") or "")
        if len(content) >= MIN_CHARS:
            note = ELIDED.format(chars=len(content))
            messages[index] = messages[index] | {"content": note}
            removed += len(content) - len(note)
    return removed
