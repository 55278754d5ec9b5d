"""Whether the model server is saturated, read from its Prometheus `/metrics` (vLLM or SGLang).

A saturated server queues requests and evicts KV cache, so every running agent slows down; a new
run then only adds to the queue. Workers read the server's metrics at most every few seconds
and record the verdict in the admission queue (workers/admission.py), where it holds back new
admissions fleet-wide. A server whose metrics cannot be read counts as not saturated: the check
only ever delays work, it never stops it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import httpx
import structlog
from prometheus_client.parser import text_string_to_metric_families

from workers.admission import Admission

log = structlog.get_logger("qwen_fix.saturation")

WAITING = ("vllm:num_requests_waiting", "sglang:num_queue_reqs")
"""Requests queued in the server, not yet running (summed over engines / data-parallel ranks)."""
KV_CACHE = ("vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc", "sglang:token_usage")
"""Fraction (0–1) of the KV cache in use; vLLM before 0.10 named it gpu_cache_usage_perc.
The fullest engine counts."""
CACHE_SECONDS = 2.0
"""How long one reading of `/metrics` stands."""
FETCH_TIMEOUT = 2.0


@dataclass(frozen=True, slots=True)
class ServerLoad:
    """What the server's metrics say; None where it does not report the number."""

    waiting: float | None = None
    kv_cache: float | None = None


@dataclass(frozen=True, slots=True)
class SaturationThresholds:
    waiting: float = 2.0
    """Saturated while more requests than this wait (MODEL_SATURATION_WAITING)."""
    kv_cache: float = 0.95
    """Saturated while more of the KV cache than this is in use (MODEL_SATURATION_KV_CACHE)."""


def parse_load(text: str) -> ServerLoad:
    """The load in a Prometheus text exposition; ValueError when it is not one, or reports
    none of the numbers vLLM and SGLang publish."""
    waiting: list[float] = []
    kv_cache: list[float] = []
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name in WAITING:
                waiting.append(sample.value)
            elif sample.name in KV_CACHE:
                kv_cache.append(sample.value)
    if not waiting and not kv_cache:
        raise ValueError(f"none of {', '.join(WAITING + KV_CACHE)} in the metrics")
    return ServerLoad(
        waiting=sum(waiting) if waiting else None, kv_cache=max(kv_cache) if kv_cache else None
    )


def saturation_reason(load: ServerLoad, thresholds: SaturationThresholds) -> str | None:
    """Why the server counts as saturated, or None when it has room."""
    reasons = []
    if load.waiting is not None and load.waiting > thresholds.waiting:
        reasons.append(f"{load.waiting:g} requests waiting")
    if load.kv_cache is not None and load.kv_cache > thresholds.kv_cache:
        reasons.append(f"KV cache {load.kv_cache:.0%} full")
    return ", ".join(reasons) or None


def metrics_url(base_url: str, override: str | None) -> str | None:
    """MODEL_METRICS_URL if set (empty: no check), else MODEL_BASE_URL without `/v1` + /metrics."""
    if override is not None:
        return override.strip() or None
    root = base_url.rstrip("/").removesuffix("/v1")
    return f"{root}/metrics"


class SaturationProbe:
    """Reads the server's metrics at most every `cache_seconds` and records the verdict.

    A worker's waiting jobs call `refresh` before each poll of the queue; only the first call in
    `cache_seconds` reads the endpoint. The recorded verdict outlives the reading a little, so
    that between two readings the queue does not see "unknown" and admit.
    """

    def __init__(
        self,
        admission: Admission,
        url: str,
        thresholds: SaturationThresholds,
        *,
        cache_seconds: float = CACHE_SECONDS,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self._admission = admission
        self.url = url
        self._thresholds = thresholds
        self._cache_seconds = cache_seconds
        self._client = client or httpx.AsyncClient(timeout=FETCH_TIMEOUT)
        self._read_at = -float("inf")
        self._unreadable = False
        self.reason: str | None = None
        """Why the server counted as saturated at the last reading; None: it had room."""

    async def refresh(self) -> None:
        if time.monotonic() - self._read_at < self._cache_seconds:
            return
        self._read_at = time.monotonic()
        reason = await self._read()
        if (reason is None) != (self.reason is None):
            log.info("saturation.changed", busy=reason is not None, reason=reason)
        self.reason = reason
        await self._admission.record_saturation(reason is not None, 3 * self._cache_seconds)

    async def _read(self) -> str | None:
        try:
            response = await self._client.get(self.url)
            response.raise_for_status()
            reason = saturation_reason(parse_load(response.text), self._thresholds)
        except (httpx.HTTPError, ValueError) as exc:
            if not self._unreadable:
                # Once per outage: a server without metrics would otherwise log every few seconds.
                log.warning(
                    "saturation.unreadable",
                    url=self.url,
                    error=f"{type(exc).__name__}: {exc}"[:300],
                    verdict="not saturated, until its metrics can be read",
                )
            self._unreadable = True
            return None
        if self._unreadable:
            log.info("saturation.readable", url=self.url)
            self._unreadable = False
        return reason

    async def close(self) -> None:
        await self._client.aclose()
