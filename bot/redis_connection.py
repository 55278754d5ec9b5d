"""How the receiver and the workers reach Redis: through restarts.

Redis restarts (an upgrade, a rescheduled pod, `docker restart`) take seconds. Without help,
every command in that window raises, so the worker's poll loop dies and the jobs running on
it fail. With a retry policy on the connection pool, each command waits for Redis instead,
backing off to a second between attempts, for up to `patience` seconds. The receiver is
given less patience than the workers: GitHub waits 10 s for an answer to a delivery, and one
it could not store is answered 503 and asked for again later (bot/redelivery.py).
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any, cast

from arq.connections import RedisSettings
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError, TimeoutError

WORKER_PATIENCE = 60.0
RECEIVER_PATIENCE = 5.0
BACKOFF_BASE = 0.1
BACKOFF_CAP = 1.0


def redis_settings(url: str, *, patience: float) -> RedisSettings:
    """arq's settings for `url`, with commands retried through a restart of `patience` s."""
    settings = RedisSettings.from_dsn(url)
    settings.retry = Retry(
        ExponentialBackoff(cap=BACKOFF_CAP, base=BACKOFF_BASE), attempts(patience)
    )
    settings.retry_on_error = [ConnectionError, TimeoutError, OSError]
    settings.conn_retries = attempts(patience)
    settings.conn_retry_delay = 1
    return settings


def attempts(patience: float) -> int:
    """Retries whose backoff (0.1 s doubling to 1 s) adds up to about `patience` seconds."""
    waited, delay, count = 0.0, BACKOFF_BASE, 0
    while waited < patience:
        waited += min(delay, BACKOFF_CAP)
        delay *= 2
        count += 1
    return count


def reply(command: Any) -> Awaitable[Any]:
    """A command of redis.asyncio, as the awaitable it is: redis-py types its commands as
    sync-or-async, which mypy cannot await."""
    return cast(Awaitable[Any], command)
