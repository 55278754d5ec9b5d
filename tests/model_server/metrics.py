"""`/metrics` in Prometheus text format, with saturation signals a test sets at runtime.

vLLM v1 (`PrometheusStatLogger`, vllm/v1/metrics/loggers.py): gauges
`vllm:num_requests_running`, `vllm:num_requests_waiting`, `vllm:kv_cache_usage_perc` (was
`vllm:gpu_cache_usage_perc`, deprecated then removed), counters `vllm:num_preemptions`,
`vllm:prompt_tokens`, `vllm:generation_tokens`, `vllm:prefix_cache_queries`,
`vllm:prefix_cache_hits` (exposed with `_total`), labelled `engine` and `model_name`.
SGLang (`SchedulerMetricsCollector`, python/sglang/srt/metrics/collector.py, with
`--enable-metrics`): gauges `sglang:num_running_reqs`, `sglang:num_queue_reqs`,
`sglang:token_usage`, `sglang:cache_hit_rate`, counters `sglang:prompt_tokens`,
`sglang:generation_tokens`, labelled `model_name`.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from tests.model_server.config import ServerConfig


@dataclass
class ServerMetrics:
    """What `/metrics` reports; tests set the saturation signals, the server counts tokens."""

    running: int = 0
    waiting: int = 0
    kv_cache_usage: float = 0.0
    """Fraction of the KV cache in use, 0 to 1 (`kv_cache_usage_perc`, SGLang `token_usage`)."""
    preemptions: int = 0
    prompt_tokens: int = 0
    generation_tokens: int = 0
    prefix_cache_queries: int = 0
    prefix_cache_hits: int = 0


def gauge(name: str, documentation: str, labels: dict[str, str], value: float) -> Metric:
    family = GaugeMetricFamily(name, documentation, labels=list(labels))
    family.add_metric(list(labels.values()), value)
    return family


def counter(name: str, documentation: str, labels: dict[str, str], value: float) -> Metric:
    family = CounterMetricFamily(name, documentation, labels=list(labels))
    family.add_metric(list(labels.values()), value)
    return family


def vllm_families(metrics: ServerMetrics, model: str) -> Iterator[Metric]:
    labels = {"engine": "0", "model_name": model}
    yield gauge(
        "vllm:num_requests_running",
        "Number of requests in model execution batches.",
        labels,
        metrics.running,
    )
    yield gauge(
        "vllm:num_requests_waiting",
        "Number of requests waiting to be processed.",
        labels,
        metrics.waiting,
    )
    yield gauge(
        "vllm:kv_cache_usage_perc",
        "KV-cache usage. 1 means 100 percent usage.",
        labels,
        metrics.kv_cache_usage,
    )
    yield counter(
        "vllm:num_preemptions",
        "Cumulative number of preemptions from the engine.",
        labels,
        metrics.preemptions,
    )
    yield counter(
        "vllm:prompt_tokens", "Number of prefill tokens processed.", labels, metrics.prompt_tokens
    )
    yield counter(
        "vllm:generation_tokens",
        "Number of generation tokens processed.",
        labels,
        metrics.generation_tokens,
    )
    yield counter(
        "vllm:prefix_cache_queries",
        "Prefix cache queries, in terms of number of queried tokens.",
        labels,
        metrics.prefix_cache_queries,
    )
    yield counter(
        "vllm:prefix_cache_hits",
        "Prefix cache hits, in terms of number of cached tokens.",
        labels,
        metrics.prefix_cache_hits,
    )


def sglang_families(metrics: ServerMetrics, model: str) -> Iterator[Metric]:
    labels = {"model_name": model}
    queries = metrics.prefix_cache_queries
    hit_rate = metrics.prefix_cache_hits / queries if queries else 0.0
    yield gauge(
        "sglang:num_running_reqs", "The number of running requests.", labels, metrics.running
    )
    yield gauge(
        "sglang:num_queue_reqs",
        "The number of requests in the waiting queue.",
        labels,
        metrics.waiting,
    )
    yield gauge("sglang:token_usage", "The token usage.", labels, metrics.kv_cache_usage)
    yield gauge("sglang:cache_hit_rate", "The prefix cache hit rate.", labels, hit_rate)
    yield counter(
        "sglang:prompt_tokens", "Number of prefill tokens processed.", labels, metrics.prompt_tokens
    )
    yield counter(
        "sglang:generation_tokens",
        "Number of generation tokens processed.",
        labels,
        metrics.generation_tokens,
    )


class _Snapshot:
    def __init__(self, metrics: ServerMetrics, config: ServerConfig) -> None:
        self.metrics, self.config = metrics, config

    def collect(self) -> Iterator[Metric]:
        families = sglang_families if self.config.dialect == "sglang" else vllm_families
        return families(self.metrics, self.config.model)


def exposition(metrics: ServerMetrics, config: ServerConfig) -> bytes:
    """The Prometheus text exposition of `metrics` as this dialect names them."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Snapshot(metrics, config))
    return generate_latest(registry)
