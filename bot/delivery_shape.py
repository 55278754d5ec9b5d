"""What a webhook delivery must look like before anything acts on it.

Whatever reaches the receiver is checked here: a body no larger than GitHub sends, the headers
GitHub sets, a JSON object whose shared fields have GitHub's types, and a target whose ids and
names have GitHub's shapes (they go into API paths, Redis keys, job ids and metrics labels).
Each failure is a MalformedPayload or an answer saying what is wrong: a 4xx, never a crash.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from starlette.types import Receive

from bot.routing import (
    Cancel,
    CiFailed,
    CiFixRequest,
    FollowUp,
    MalformedPayload,
    StatusRequest,
    Trigger,
)

MAX_BODY = 25 * 1024 * 1024
"""GitHub caps webhook payloads at 25 MB: a larger body is not GitHub's, and is not read."""

HEADER_TOKEN = re.compile(r"[!-~]{1,100}")
"""X-GitHub-Event and X-GitHub-Delivery: names and GUIDs, which key Redis, jobs and metrics."""
ACTION = re.compile(r"[a-z_]{1,100}")
"""GitHub's actions (`labeled`, `review_requested`); a metrics label, so nothing else."""
LOGIN = re.compile(r"[A-Za-z0-9_-]{1,100}(\[bot\])?")
REPOSITORY = re.compile(r"[A-Za-z0-9_-]{1,100}/(?!\.\.?\Z)[A-Za-z0-9_.-]{1,100}")
COMMIT_SHA = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")
"""A full commit id, SHA-1 or SHA-256."""
"""`owner/name` as GitHub allows them; both go into API paths, so nothing else may."""
MAX_ID = 2**63 - 1
"""GitHub's ids and numbers are positive 64-bit integers."""


async def read_body(receive: Receive) -> bytes | None:
    """The raw body from the ASGI server, or None once it outgrows GitHub's cap (the rest is
    left unread)."""
    body = bytearray()
    while True:
        message = await receive()
        body += message.get("body", b"")
        if len(body) > MAX_BODY:
            return None
        if not message.get("more_body", False):
            return bytes(body)


@dataclass(frozen=True, slots=True)
class DeliveryHeaders:
    """The four headers a delivery is handled by, as text (latin-1, as HTTP carries them)."""

    signature: str | None
    event: str
    delivery_id: str
    content_type: str | None

    @classmethod
    def of(cls, raw: Iterable[tuple[bytes, bytes]]) -> DeliveryHeaders:
        """From the ASGI scope's header list (lower-case names); the first of repeated ones."""
        found: dict[bytes, str] = {}
        for name, value in raw:
            if name in _WANTED and name not in found:
                found[name] = value.decode("latin-1")
        return cls(
            found.get(b"x-hub-signature-256"),
            found.get(b"x-github-event", ""),
            found.get(b"x-github-delivery", ""),
            found.get(b"content-type"),
        )


_WANTED = frozenset(
    {b"x-hub-signature-256", b"x-github-event", b"x-github-delivery", b"content-type"}
)


def header_problem(
    event: str, delivery_id: str, content_type: str | None
) -> tuple[int, str, str] | None:
    """Why a signed delivery's headers are not GitHub's, as an answer; None when they are."""
    if not event or not delivery_id:
        return 400, "rejected", "X-GitHub-Event and X-GitHub-Delivery are required"
    if not (HEADER_TOKEN.fullmatch(event) and HEADER_TOKEN.fullmatch(delivery_id)):
        reason = "X-GitHub-Event and X-GitHub-Delivery must be 1 to 100 visible ASCII characters"
        return 400, "rejected", reason
    media_type = (content_type or "application/json").split(";", 1)[0].strip().lower()
    if media_type != "application/json":
        reason = "Content-Type must be application/json (the webhook's content type setting)"
        return 415, "rejected", reason
    return None


def parse_payload(body: bytes) -> dict[str, Any]:
    """The delivery's JSON object with the fields every event shares checked; raises
    MalformedPayload saying what is wrong."""
    try:
        payload = json.loads(body.decode())
    except UnicodeDecodeError:
        raise MalformedPayload("body is not UTF-8") from None
    except RecursionError:
        raise MalformedPayload("body nests too deeply") from None
    except ValueError:
        raise MalformedPayload("body is not valid JSON") from None
    if not isinstance(payload, dict):
        raise MalformedPayload("payload is not a JSON object")
    action = payload.get("action")
    if action is not None and not (isinstance(action, str) and ACTION.fullmatch(action)):
        raise MalformedPayload("action is not a GitHub action name")
    if payload.get("installation") is not None and not is_github_id(
        field_at(payload, "installation", "id")
    ):
        raise MalformedPayload("installation.id is not a GitHub id")
    return payload


def check_target(
    decision: Trigger | FollowUp | Cancel | StatusRequest | CiFailed | CiFixRequest,
) -> None:
    """Raise MalformedPayload unless the target's ids and names have GitHub's shapes: they go
    into API paths, Redis keys and job ids."""
    target = decision.target
    review_id = decision.review_id if isinstance(decision, FollowUp) else None
    ids = (target.installation_id, target.number, target.comment_id, review_id)
    if not all(value is None or is_github_id(value) for value in ids):
        raise MalformedPayload("an id or number is not a GitHub id (1 to 2**63 - 1)")
    if not REPOSITORY.fullmatch(target.repository):
        raise MalformedPayload("the repository's full_name is not owner/name")
    if not LOGIN.fullmatch(target.sender):
        raise MalformedPayload("the sender's login is not a GitHub login")
    if isinstance(decision, CiFailed) and not COMMIT_SHA.fullmatch(decision.head_sha):
        raise MalformedPayload("head_sha is not a full commit id")


def is_github_id(value: object) -> bool:
    return type(value) is int and 0 < value <= MAX_ID


def field_at(payload: Mapping[str, Any], *path: str) -> Any:
    """`payload[a][b]…`, or None where a step is missing or not an object."""
    value: Any = payload
    for name in path:
        if not isinstance(value, Mapping):
            return None
        value = value.get(name)
    return value
