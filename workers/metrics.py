"""Prometheus metrics of the worker: jobs, agent runs, model tokens, sandbox starts, test runs."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from threading import Thread
from types import TracebackType
from wsgiref.simple_server import WSGIServer

import structlog
from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server

from bot.github_metrics import GitHubMetrics
from sandbox.protocol import ExecResult
from workers.agent.loop import AgentResult
from workers.agent.tools.context import TodoItem
from workers.agent.trajectory import StepRecord

log = structlog.get_logger("qwen_fix.metrics")

JOB_BUCKETS = (10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 900.0, 1800.0, 3600.0, 7200.0)
STEP_BUCKETS = (1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 50.0, 75.0, 100.0, 150.0, 200.0, 300.0, 500.0)
SANDBOX_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
TEST_BUCKETS = (1.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 900.0, 1800.0)
WAIT_BUCKETS = (0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 1800.0, 3600.0)
MODEL_BUCKETS = (0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 40.0, 80.0, 160.0, 320.0)
RATE_BUCKETS = (1.0, 5.0, 10.0, 20.0, 40.0, 60.0, 80.0, 120.0, 200.0, 400.0)
EXEC_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0, 60.0, 300.0)
TOOLS = frozenset({"bash", "str_replace_editor", "run_tests", "todo", "submit", "search"})
"""Tool names used as label values; any other counts as `other`, so labels stay bounded."""


class WorkerMetrics:
    """The worker's metrics, in a registry of their own so each worker (and test) has its own.

    Labels are bounded sets only (job kind, outcome, token kind): never a repository or user.
    """

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.jobs = Counter(
            "qwen_fix_jobs",
            "Finished jobs by kind (solve_issue, follow_up) and outcome "
            "(opened, planned, answered, pushed, replied, nothing-asked, failed, stopped).",
            ["kind", "outcome"],
            registry=self.registry,
        )
        self.job_seconds = Histogram(
            "qwen_fix_job_seconds",
            "Seconds one job ran, whatever its outcome.",
            ["kind"],
            buckets=JOB_BUCKETS,
            registry=self.registry,
        )
        self.agent_steps = Histogram(
            "qwen_fix_agent_steps",
            "Model turns of one agent run, by how the run ended (submitted, step_limit, …).",
            ["outcome"],
            buckets=STEP_BUCKETS,
            registry=self.registry,
        )
        self.tokens = Counter(
            "qwen_fix_model_tokens",
            "Model tokens: prompt (all input, cached included), cached (input served from the "
            "server's prefix cache) and completion.",
            ["kind"],
            registry=self.registry,
        )
        self.sandbox_start_seconds = Histogram(
            "qwen_fix_sandbox_start_seconds",
            "Seconds to start one sandbox container.",
            buckets=SANDBOX_BUCKETS,
            registry=self.registry,
        )
        self.test_run_seconds = Histogram(
            "qwen_fix_test_run_seconds",
            "Seconds of the verifying test run after the agent, by outcome "
            "(passed, failed, timed_out).",
            ["outcome"],
            buckets=TEST_BUCKETS,
            registry=self.registry,
        )
        self.queue_wait_seconds = Histogram(
            "qwen_fix_queue_wait_seconds",
            "Seconds a job waited in the queue before a worker started it, by kind.",
            ["kind"],
            buckets=WAIT_BUCKETS,
            registry=self.registry,
        )
        self.model_request_seconds = Histogram(
            "qwen_fix_model_request_seconds",
            "Seconds of the model's answers to the agent's requests (one per step), retries in.",
            buckets=MODEL_BUCKETS,
            registry=self.registry,
        )
        self.model_tokens_per_second = Histogram(
            "qwen_fix_model_tokens_per_second",
            "Completion tokens per second of each of the model's answers.",
            buckets=RATE_BUCKETS,
            registry=self.registry,
        )
        self.sandbox_exec_seconds = Histogram(
            "qwen_fix_sandbox_exec_seconds",
            "Seconds of each of the agent's tool calls in its sandbox, by tool.",
            ["tool"],
            buckets=EXEC_BUCKETS,
            registry=self.registry,
        )
        self.github = GitHubMetrics(self.registry)

    def job_started(self, kind: str, waited: float) -> None:
        self.queue_wait_seconds.labels(kind).observe(max(waited, 0.0))

    # The agent's observer: each step's model answer and tool calls.
    async def plan_changed(self, plan: list[TodoItem]) -> None:
        return None

    async def step_finished(self, record: StepRecord) -> None:
        if record.model_seconds > 0:
            self.model_request_seconds.observe(record.model_seconds)
            rate = record.usage.completion_tokens / record.model_seconds
            self.model_tokens_per_second.observe(rate)
        for call, seconds in zip(record.tool_calls, record.tool_call_seconds, strict=False):
            name = str(call.get("name"))
            self.sandbox_exec_seconds.labels(name if name in TOOLS else "other").observe(seconds)

    def job(self, kind: str) -> JobObservation:
        """Time one job; the caller sets `outcome` from what the job left on GitHub."""
        return JobObservation(self, kind)

    def agent_finished(self, result: AgentResult) -> None:
        self.agent_steps.labels(result.exit_status).observe(result.steps)
        self.tokens.labels("prompt").inc(result.usage.prompt_tokens)
        self.tokens.labels("cached").inc(result.usage.cached_tokens)
        self.tokens.labels("completion").inc(result.usage.completion_tokens)

    def sandbox_started(self, seconds: float) -> None:
        self.sandbox_start_seconds.observe(seconds)

    def tests_ran(self, result: ExecResult) -> None:
        outcome = "timed_out" if result.timed_out else "passed" if result.ok else "failed"
        self.test_run_seconds.labels(outcome).observe(result.duration)


@dataclass
class JobObservation:
    """One job being run; recorded when the `with` block ends.

    A cancelled job (stop, supersede, arq's timeout) counts as `stopped`, any other exception as
    `failed`.
    """

    metrics: WorkerMetrics
    kind: str
    outcome: str = "failed"
    started: float = field(default_factory=time.monotonic)

    def __enter__(self) -> JobObservation:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if isinstance(error, asyncio.CancelledError):
            self.outcome = "stopped"
        elif error is not None:
            self.outcome = "failed"
        self.metrics.jobs.labels(self.kind, self.outcome).inc()
        self.metrics.job_seconds.labels(self.kind).observe(time.monotonic() - self.started)


@dataclass
class MetricsExporter:
    """prometheus_client's HTTP server for one registry, on a thread of its own."""

    server: WSGIServer
    thread: Thread

    @classmethod
    def start(cls, metrics: WorkerMetrics, host: str, port: int) -> MetricsExporter | None:
        """Serve `GET /metrics` on host:port; None, with a warning, when the port is taken,
        because a worker without its exporter still does its jobs."""
        try:
            server, thread = start_http_server(port, addr=host, registry=metrics.registry)
        except OSError as exc:
            log.warning("metrics.exporter_failed", host=host, port=port, error=str(exc))
            return None
        log.info("metrics.exporter_started", host=host, port=port)
        return cls(server, thread)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)
