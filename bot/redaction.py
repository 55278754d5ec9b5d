"""Secrets masked on every way out: log lines, agent observations, trajectories, and everything
the app writes on GitHub (comments, pull request bodies and titles, check runs, commit messages).

This is defence in depth: the sandbox holds no secret and the model never sees one, so nothing
here should ever match. Two kinds of text are masked:
- the secrets this process knows: the app's private key (whole, and each line of it), the
  webhook secret, the model server's key, and each installation token as it is minted;
- anything shaped like a GitHub token or a PEM private key, known or not.

Secrets arrive in many places (the settings at start, a new installation token every hour) and
every output path must see all of them, so the known ones live in one process-wide set.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable, Mapping, MutableMapping
from typing import Any

MASK = "***"
MIN_SECRET = 8
"""Shorter values are not masked: a short webhook secret would mask ordinary words."""

TOKEN_SHAPES = re.compile(
    r"\b(?:gh[pousr]_[A-Za-z0-9]{30,255}|github_pat_[A-Za-z0-9_]{40,255})\b"
    r"|-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----.*?"
    r"(?:-----END (?:[A-Z0-9]+ )*PRIVATE KEY-----|\Z)",
    re.DOTALL,
)

_known: set[str] = set()
_pattern: re.Pattern[str] | None = None
_lock = threading.Lock()


def register_secret(value: str | None) -> None:
    """Mask `value` (and, for a multi-line secret such as a PEM key, each long line of it)."""
    if not value:
        return
    parts = {value, *(line.strip() for line in value.splitlines())}
    fresh = {part for part in parts if len(part) >= MIN_SECRET and "-----" not in part}
    global _pattern
    with _lock:
        if fresh <= _known:
            return
        _known.update(fresh)
        # Longest first, so a whole key is masked before any of its lines.
        alternatives = sorted(_known, key=len, reverse=True)
        _pattern = re.compile("|".join(re.escape(secret) for secret in alternatives))


def redact(text: str) -> str:
    """`text` with every known secret and every token-shaped string masked."""
    pattern = _pattern
    if pattern is not None:
        text = pattern.sub(MASK, text)
    return TOKEN_SHAPES.sub(MASK, text)


def redact_value(value: Any) -> Any:
    """`redact` through strings inside lists, tuples and dicts (keys included)."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, Mapping):
        return {redact_value(k): redact_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(redact_value(item) for item in value)
    return value


def redact_log_event(
    _logger: Any, _method: str, event: MutableMapping[str, Any]
) -> Mapping[str, Any]:
    """structlog processor: the last before rendering, after exceptions are formatted."""
    return {key: redact_value(value) for key, value in event.items()}


def register_secrets(values: Iterable[str | None]) -> None:
    for value in values:
        register_secret(value)
