"""The worker's exporter after one real run: receiver and worker processes, Redis, Docker, the
GitHub emulator and the scripted model, scraped over HTTP as Prometheus would."""

from __future__ import annotations

import json

import httpx
import pytest

from tests.e2e.conftest import MakeHarness
from tests.e2e.harness import REPO, Harness, fix_add_script
from tests.metrics.exposition import Scrape

pytestmark = [pytest.mark.docker, pytest.mark.slow]


def scrape(port: int) -> Scrape:
    response = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10)
    assert response.status_code == 200, response.text
    return Scrape.parse(response.text)


def run_one_issue(harness: Harness) -> None:
    issue = harness.emulator.add_issue(REPO, "add() subtracts", "`add(2, 3)` is -1.", "watcher")
    delivery = harness.label(issue)
    assert delivery["status_code"] == 202, delivery
    result = harness.job_result(json.loads(delivery["response"]["payload"])["detail"])
    assert result["state"] == "opened", harness.output()


def test_one_pull_request_shows_in_the_worker_and_receiver_metrics(
    make_harness: MakeHarness,
) -> None:
    script = fix_add_script()
    harness = make_harness(script)
    run_one_issue(harness)

    worker = scrape(int(harness.env["METRICS_PORT"]))
    receiver = scrape(harness.web_port)

    assert worker.series("qwen_fix_jobs_total", "kind", "outcome") == {
        ("solve_issue", "opened"): 1.0
    }
    assert worker.value("qwen_fix_job_seconds_count", kind="solve_issue") == 1
    assert worker.value("qwen_fix_job_seconds_sum", kind="solve_issue") > 0
    # Every scripted turn is one agent step; the run ended with the second `submit`.
    assert worker.series("qwen_fix_agent_steps_count", "outcome") == {("submitted",): 1.0}
    assert worker.value("qwen_fix_agent_steps_sum", outcome="submitted") == len(script)
    tokens = worker.series("qwen_fix_model_tokens_total", "kind")
    assert tokens[("prompt",)] > tokens[("cached",)] > 0
    assert tokens[("completion",)] > 0
    assert worker.value("qwen_fix_sandbox_start_seconds_count") == 1
    assert worker.value("qwen_fix_sandbox_start_seconds_sum") > 0
    assert worker.series("qwen_fix_test_run_seconds_count", "outcome") == {("passed",): 1.0}

    deliveries = receiver.series("qwen_fix_webhook_deliveries_total", "event", "action", "outcome")
    assert deliveries == {("issues", "labeled", "queued"): 1.0}

    # Waiting, the model, the sandbox and GitHub, for the dashboard (deploy/grafana/).
    assert worker.value("qwen_fix_queue_wait_seconds_count", kind="solve_issue") == 1
    assert worker.value("qwen_fix_model_request_seconds_count") == len(script)
    assert worker.value("qwen_fix_model_tokens_per_second_count") == len(script)
    tools = worker.series("qwen_fix_sandbox_exec_seconds_count", "tool")
    # The second `submit` ends the run instead of answering, so it is not a timed call.
    assert tools == {("todo",): 2.0, ("str_replace_editor",): 1.0, ("run_tests",): 1.0,
                     ("submit",): 1.0}  # fmt: skip
    github = worker.series("qwen_fix_github_requests_total", "method", "status")
    assert github[("GET", "2xx")] > 0 and github[("POST", "2xx")] > 0
    assert worker.value("qwen_fix_github_rate_limit_remaining", resource="core") > 0
    assert receiver.series("qwen_fix_github_requests_total", "method", "status")[("GET", "2xx")] > 0
    assert receiver.value("qwen_fix_queue_jobs") == 0
