"""Prometheus metrics of the app's calls to GitHub, shared by the receiver and the workers:
requests by method and status class, and what GitHub says is left of each rate limit."""

from __future__ import annotations

import httpx
from prometheus_client import CollectorRegistry, Counter, Gauge


class GitHubMetrics:
    """Counts every answer the shared transport reads (bot/github.py). Labels are bounded:
    method, status class, rate-limit resource, never a path, repository or user."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter(
            "qwen_fix_github_requests",
            "Requests to GitHub's API by method and answer (2xx, 3xx, 4xx, 5xx, or error when "
            "no answer came).",
            ["method", "status"],
            registry=registry,
        )
        self.remaining = Gauge(
            "qwen_fix_github_rate_limit_remaining",
            "Requests left in the current rate-limit window, by resource (core, graphql, …), as "
            "GitHub's last answer said (x-ratelimit-remaining); per installation, the latest seen.",
            ["resource"],
            registry=registry,
        )

    def answered(self, request: httpx.Request, response: httpx.Response) -> None:
        self.requests.labels(request.method, f"{response.status_code // 100}xx").inc()
        remaining = response.headers.get("x-ratelimit-remaining")
        if remaining is not None and remaining.isdigit():
            resource = response.headers.get("x-ratelimit-resource", "core")[:32]
            self.remaining.labels(resource).set(int(remaining))

    def failed(self, request: httpx.Request) -> None:
        self.requests.labels(request.method, "error").inc()
