"""Webhook delivery de-duplication in Redis: GitHub may send one delivery more than once."""

from __future__ import annotations

from redis.asyncio import Redis

DELIVERY_TTL = 7 * 24 * 3600
"""GitHub redelivers within days; remember ids for a week."""


class DeliveryLog:
    """Claims delivery ids so that each is acted on once across every receiver process."""

    def __init__(self, redis: Redis, prefix: str = "qwen-fix:delivery:") -> None:
        self._redis = redis
        self._prefix = prefix

    async def claim(self, delivery_id: str) -> bool:
        """True for the first claim of this id; False for a repeat."""
        return bool(await self._redis.set(self._prefix + delivery_id, 1, nx=True, ex=DELIVERY_TTL))

    async def release(self, delivery_id: str) -> None:
        """Forget a claim whose work failed, so GitHub's redelivery is acted on."""
        await self._redis.delete(self._prefix + delivery_id)
