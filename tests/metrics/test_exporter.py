"""The worker's exporter on a real socket, and the setting that turns it off."""

from __future__ import annotations

import socket
from pathlib import Path

import httpx
import pytest
from prometheus_client import CollectorRegistry

from bot.settings import load_settings
from sandbox.protocol import ExecResult
from tests.conftest import free_port
from tests.github_emulator.auth import new_key_pair
from tests.metrics.exposition import Scrape
from workers.metrics import MetricsExporter, WorkerMetrics

KEY = new_key_pair()[0]


def test_the_exporter_serves_its_own_registry_until_closed() -> None:
    metrics = WorkerMetrics(CollectorRegistry())
    metrics.tests_ran(ExecResult(exit_code=1, output="1 failed", duration=2.5))
    metrics.tests_ran(ExecResult(exit_code=-1, output="", timed_out=True, duration=900.0))
    port = free_port()
    exporter = MetricsExporter.start(metrics, "127.0.0.1", port)
    assert exporter is not None
    try:
        scrape = Scrape.parse(httpx.get(f"http://127.0.0.1:{port}/metrics").text)
    finally:
        exporter.close()

    assert scrape.series("qwen_fix_test_run_seconds_sum", "outcome") == {
        ("failed",): 2.5,
        ("timed_out",): 900.0,
    }
    # Nothing of prometheus_client's global registry (process and platform collectors) leaks in.
    assert not any(name.startswith(("process_", "python_")) for name in scrape.samples)
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", port)) != 0


def test_a_taken_port_leaves_the_worker_without_an_exporter() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert MetricsExporter.start(WorkerMetrics(), "127.0.0.1", port) is None


def test_an_empty_metrics_port_turns_the_exporter_off(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)  # no .env
    monkeypatch.delenv("METRICS_PORT", raising=False)
    common = {"app_id": 1, "webhook_secret": "s", "private_key": KEY}
    assert load_settings(**common).metrics_port == 9100
    assert load_settings(**common, metrics_port="").metrics_port is None
    assert load_settings(**common, metrics_port="9200").metrics_port == 9200
