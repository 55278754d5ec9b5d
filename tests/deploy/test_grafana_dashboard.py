"""deploy/grafana/qwen-fix.json asks only for metrics the app exports, with their real labels."""

from __future__ import annotations

import json
import re
from pathlib import Path

from prometheus_client import CollectorRegistry

from bot.metrics import ReceiverMetrics
from workers.metrics import WorkerMetrics

DASHBOARD = Path(__file__).parents[2] / "deploy" / "grafana" / "qwen-fix.json"
METRIC = re.compile(r"\b(qwen_fix_[a-z_]+)")
GROUPED = re.compile(r"by \(([a-z_, ]+)\)")
SUFFIXES = ("_bucket", "_count", "_sum", "_total", "_created")


def exported() -> dict[str, set[str]]:
    """Every metric family the receiver and a worker export, with its label names."""
    families: dict[str, set[str]] = {}
    for registry in (ReceiverMetrics().registry, WorkerMetrics(CollectorRegistry()).registry):
        # A labelled metric has no samples before its first use: its label names are read off
        # the metric itself.
        for collector in set(registry._names_to_collectors.values()):
            labels = set(getattr(collector, "_labelnames", ()))
            for family in collector.describe():
                families[family.name] = families.get(family.name, set()) | labels
    return families


def expressions() -> list[str]:
    board = json.loads(DASHBOARD.read_text())
    return [target["expr"] for panel in board["panels"] for target in panel["targets"]]


def test_every_metric_on_the_dashboard_is_exported() -> None:
    families = exported()
    used = {name for expr in expressions() for name in METRIC.findall(expr)}
    assert len(used) >= 12
    for name in used:
        base = next((name[: -len(s)] for s in SUFFIXES if name.endswith(s)), name)
        assert base in families or name in families, f"{name} is not exported"


def test_grouping_labels_exist_on_the_metrics_they_group() -> None:
    families = exported()
    for expr in expressions():
        names = METRIC.findall(expr)
        for group in GROUPED.findall(expr):
            labels = {label.strip() for label in group.split(",")} - {"le"}
            for name in names:
                base = next((name[: -len(s)] for s in SUFFIXES if name.endswith(s)), name)
                have = families.get(base, set()) | families.get(name, set())
                assert labels <= have, f"{expr}: {name} has no {labels - have}"


def test_the_dashboard_covers_queue_github_model_and_sandbox() -> None:
    text = " ".join(expressions())
    for needed in (
        "qwen_fix_queue_jobs", "qwen_fix_queue_wait_seconds", "qwen_fix_github_requests_total",
        "qwen_fix_github_rate_limit_remaining", "qwen_fix_model_request_seconds",
        "qwen_fix_model_tokens_per_second", "qwen_fix_sandbox_exec_seconds",
    ):  # fmt: skip
        assert needed in text
