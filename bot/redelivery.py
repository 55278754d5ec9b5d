"""Catch up after downtime: ask GitHub to redeliver the webhooks that failed while we were down.

GitHub does not retry failed deliveries by itself. At start the receiver lists the app's recent
deliveries, picks each one whose every attempt failed, and asks for it again; the delivery id
(GUID) stays the same, so the receiver's de-duplication still holds.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import structlog
from githubkit import GitHub
from githubkit_schemas.latest.models import HookDeliveryItem
from redis.asyncio import Redis

log = structlog.get_logger("qwen_fix.redelivery")

LAST_SEEN_KEY = "qwen-fix:receiver:last-seen"
DEFAULT_LOOKBACK = 24 * 3600.0
"""How far back to look when the receiver never ran before (GitHub keeps 3 days)."""
MAX_PAGES = 20
TICK = 10.0
"""Seconds between two marks of the receiver being up, and between attempts to have failed
deliveries sent again."""
CLOCK_MARGIN = 30.0


@dataclass(frozen=True, slots=True)
class Attempt:
    """One delivery attempt as GitHub lists it."""

    id: int
    guid: str
    delivered_at: float
    status_code: int


def to_redeliver(attempts: Iterable[Attempt], since: float) -> list[int]:
    """Attempt ids to redeliver: the newest attempt of each GUID that never got a 2xx,
    among the GUIDs first delivered since `since`."""
    by_guid: dict[str, list[Attempt]] = {}
    for attempt in attempts:
        by_guid.setdefault(attempt.guid, []).append(attempt)
    chosen = []
    for tries in by_guid.values():
        if any(200 <= t.status_code < 300 for t in tries):
            continue
        if min(t.delivered_at for t in tries) < since:
            continue
        chosen.append(max(tries, key=lambda t: t.delivered_at).id)
    return sorted(chosen)


async def redeliver_failed(app_client: GitHub, redis: Redis, *, now: float | None = None) -> int:
    """Redeliver what failed since the receiver was last seen up; returns how many."""
    now = time.time() if now is None else now
    seen = await redis.get(LAST_SEEN_KEY)
    return await redeliver_since(app_client, float(seen) if seen else now - DEFAULT_LOOKBACK)


async def redeliver_since(app_client: GitHub, since: float) -> int:
    """Redeliver the deliveries first sent since `since` that never got a 2xx."""
    attempts = await _recent_attempts(app_client, since)
    ids = to_redeliver(attempts, since)
    for delivery_id in ids:
        await app_client.rest.apps.async_redeliver_webhook_delivery(delivery_id)
    log.info("redelivery.done", looked_at=len(attempts), redelivered=len(ids))
    return len(ids)


class FailedDeliveries:
    """Since when the receiver has answered deliveries it could not act on (503): while GitHub
    or Redis fails. GitHub never retries them by itself, so they are asked for again."""

    def __init__(self) -> None:
        self.since: float | None = None

    def note(self) -> None:
        if self.since is None:
            self.since = time.time()

    def caught_up(self, since: float) -> None:
        """Those failed since `since` were asked for again (later ones stay noted)."""
        if self.since == since:
            self.since = None


async def mark_seen(redis: Redis, now: float | None = None) -> None:
    await redis.set(LAST_SEEN_KEY, str(time.time() if now is None else now))


async def keep_up(
    app_client: GitHub,
    redis: Redis,
    failures: FailedDeliveries | None = None,
    *,
    tick: float = TICK,
) -> None:
    """Run for the receiver's lifetime: catch up once, then every `tick` s note that we are up
    and ask again for the deliveries that failed since the last round (until GitHub answers)."""
    try:
        await redeliver_failed(app_client, redis)
    except Exception as exc:
        # GitHub unreachable at start must not stop the receiver; it only loses the catch-up.
        # One line says so; the traceback is for debug logs.
        log.warning(
            "redelivery.skipped",
            reason=f"could not list the app's failed deliveries: {type(exc).__name__}: {exc}",
        )
        log.debug("redelivery.failed", exc_info=True)
    while True:
        with contextlib.suppress(Exception):  # Redis down: the next round marks it
            await mark_seen(redis)
        await asyncio.sleep(tick)
        if failures is None or failures.since is None:
            continue
        since = failures.since
        try:
            # A little earlier: GitHub stamps an attempt when it sent it.
            await redeliver_since(app_client, since - CLOCK_MARGIN)
            failures.caught_up(since)
        except Exception as exc:
            log.warning("redelivery.retrying", reason=f"{type(exc).__name__}: {exc}")


async def _recent_attempts(app_client: GitHub, since: float) -> list[Attempt]:
    attempts: list[Attempt] = []
    cursor: str | None = None
    for _ in range(MAX_PAGES):
        kwargs: dict[str, Any] = {"per_page": 100}
        if cursor:
            kwargs["cursor"] = cursor
        response = await app_client.rest.apps.async_list_webhook_deliveries(**kwargs)
        page = response.parsed_data
        attempts += [_attempt(item) for item in page]
        cursor = _next_cursor(response.headers.get("link", ""))
        # Newest first: a page that reaches before `since` is the last one needed.
        if not page or cursor is None or _time(page[-1].delivered_at) < since:
            break
    return attempts


def _attempt(item: HookDeliveryItem) -> Attempt:
    return Attempt(item.id, item.guid, _time(item.delivered_at), item.status_code)


def _time(value: datetime | str) -> float:
    if isinstance(value, datetime):
        return value.timestamp()
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def _next_cursor(link: str) -> str | None:
    for part in link.split(","):
        if 'rel="next"' in part and "cursor=" in part:
            url = part[part.index("<") + 1 : part.index(">")]
            return url.split("cursor=", 1)[1].split("&", 1)[0]
    return None
