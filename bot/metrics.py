"""Prometheus metrics of the webhook receiver: deliveries by event, action and outcome, latency."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from types import TracebackType

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import generate_latest

from bot.github_metrics import GitHubMetrics

UNVERIFIED = "unverified"
"""Event label of a delivery whose signature failed: its headers are not GitHub's word."""

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
"""Seconds; the receiver answers in milliseconds unless GitHub's permission check is slow."""


class ReceiverMetrics:
    """The receiver's metrics, in a registry of their own so each app (and test) has its own."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.deliveries = Counter(
            "qwen_fix_webhook_deliveries",
            "Webhook deliveries by event, action and what the receiver did with them.",
            ["event", "action", "outcome"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "qwen_fix_webhook_seconds",
            "Seconds from a delivery's arrival to the receiver's answer, by outcome.",
            ["outcome"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.queue_depth = Gauge(
            "qwen_fix_queue_jobs",
            "Jobs in the queue (waiting, deferred or retrying), read from Redis at each scrape.",
            registry=self.registry,
        )
        self.github = GitHubMetrics(self.registry)

    def delivery(self) -> DeliveryObservation:
        """Time one delivery; the handler fills in its labels as it learns them."""
        return DeliveryObservation(self)

    def exposition(self) -> tuple[bytes, str]:
        """The registry in Prometheus' text format, and its content type."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


@dataclass
class DeliveryObservation:
    """One delivery being handled; recorded when the `with` block ends, as `error` if it raised."""

    metrics: ReceiverMetrics
    event: str = UNVERIFIED
    action: str = ""
    outcome: str = "error"
    started: float = field(default_factory=time.perf_counter)

    def __enter__(self) -> DeliveryObservation:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if error is not None:
            self.outcome = "error"
        seconds = time.perf_counter() - self.started
        self.metrics.deliveries.labels(self.event, self.action, self.outcome).inc()
        self.metrics.latency.labels(self.outcome).observe(seconds)
