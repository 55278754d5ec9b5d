"""The arq worker: builds the long-lived clients once (`ctx`) and runs jobs through the pipeline."""

from __future__ import annotations

import asyncio
import dataclasses
import socket
import time
import uuid
from collections.abc import Coroutine
from signal import Signals
from typing import Any

import docker
import structlog
from arq.worker import Retry, Worker, func
from redis.asyncio import Redis

from bot.control import WorkRegistry
from bot.github import GitHubApp
from bot.jobs import CI_FIX, FOLLOW_UP, SOLVE_ISSUE, CiFixJob, FollowUpJob, IssueJob
from bot.redis_connection import WORKER_PATIENCE
from bot.redis_connection import redis_settings as to_redis
from bot.settings import Settings
from sandbox import labels as label
from sandbox.config import SandboxConfig
from sandbox.docker import RUN_DIR_PREFIX
from sandbox.pool import SLOT_PREFIX, SandboxPool
from sandbox.reaper import reap_directories, reap_orphans
from workers import ci_fix, crash_recovery
from workers.admission import Admission, AdmissionLimits
from workers.agent.model import ModelClient
from workers.ci_ledger import CiFixLimits, CiLedger
from workers.follow_up import follow_up
from workers.git import MirrorCache
from workers.limits import job_time_limit
from workers.liveness import BEATS_TO_LIVE, beat, beat_and_reap
from workers.metrics import MetricsExporter, WorkerMetrics
from workers.model_slot import ModelSlots
from workers.pipeline import Deps, Outcome, PipelineConfig, solve_issue
from workers.run_log import RunLogs
from workers.run_settings import agent_config, model_config
from workers.sandbox_image import with_image_path
from workers.saturation import SaturationProbe, SaturationThresholds, metrics_url

log = structlog.get_logger("qwen_fix.worker")

SHUTDOWN_REASON = "the worker shut down; the job runs again when a worker is back"


def pipeline_config(settings: Settings) -> PipelineConfig:
    return PipelineConfig(
        data_dir=settings.data_dir,
        command_name=settings.command_name,
        model_name=settings.model_name,
        agent=agent_config(settings),
        sandbox=SandboxConfig(
            image=settings.sandbox_image,
            memory=settings.sandbox_memory,
            cpus=settings.sandbox_cpus,
            pids=settings.sandbox_pids,
            lifetime=settings.sandbox_lifetime,
            scratch_dir=settings.data_dir / "sandboxes",
        ),
        test_timeout=settings.test_timeout,
        queue_timeout=settings.model_queue_timeout,
        ci_fix=CiFixLimits(
            max_attempts=settings.ci_fix_max_attempts,
            pending_limit=settings.ci_pending_limit,
            poll=settings.ci_poll_seconds,
        ),
    )


def _as_result(outcome: Outcome) -> dict[str, Any]:
    return {
        "state": outcome.state,
        "pr_number": outcome.pr_number,
        "pr_url": outcome.pr_url,
        "draft": outcome.draft,
        "branch": outcome.branch,
        "commit": outcome.commit,
    }


async def run_solve_issue(ctx: dict[str, Any], payload: dict[str, Any]) -> dict[str, Any]:
    """arq job: one issue → one pull request, plan or answer."""
    job = IssueJob.model_validate(payload)
    return await _run(ctx, SOLVE_ISSUE, solve_issue(ctx["deps"], job), job,
                      issue=job.issue_number, mode=job.mode)  # fmt: skip


async def run_follow_up(ctx: dict[str, Any], payload: dict[str, Any]) -> dict[str, Any]:
    """arq job: a reviewer's request → a commit on the pull request and replies."""
    job = FollowUpJob.model_validate(payload)
    return await _run(ctx, FOLLOW_UP, follow_up(ctx["deps"], job), job,
                      pull=job.pull_number, source=job.source)  # fmt: skip


async def run_ci_fix(ctx: dict[str, Any], payload: dict[str, Any]) -> dict[str, Any]:
    """arq job: failed checks on a qwen-fix pull request → maybe one fix commit.

    Looking costs no model slot; checks still running are looked at again (arq's Retry)."""
    job = CiFixJob.model_validate(payload)
    deps: Deps = ctx["deps"]
    with structlog.contextvars.bound_contextvars(
        job_id=ctx.get("job_id"), repo=job.repository, pull=job.pull_number
    ):
        verdict = await ci_fix.examine(deps, job, ctx.get("job_try", 1))
        if isinstance(verdict, ci_fix.LookAgain):
            log.info("ci_fix.checks_running", look_again_in=verdict.after)
            raise Retry(defer=verdict.after)
        if isinstance(verdict, ci_fix.Settled):
            log.info("ci_fix.settled", reason=verdict.state)
            return {"state": "settled", "reason": verdict.state}
    return await _run(ctx, CI_FIX, ci_fix.fix_ci(deps, job, verdict), job,
                      pull=job.pull_number, attempt=verdict.attempt)  # fmt: skip


async def _run(
    ctx: dict[str, Any],
    kind: str,
    work: Coroutine[Any, Any, Outcome],
    job: IssueJob | FollowUpJob | CiFixJob,
    **bound: object,
) -> dict[str, Any]:
    """One job with its log context bound and its outcome counted."""
    deps: Deps = ctx["deps"]
    with structlog.contextvars.bound_contextvars(
        job_id=ctx.get("job_id"), repo=job.repository, **bound
    ):
        log.info("job.started", triggered_by=job.triggered_by, attempt=ctx.get("job_try"))
        slots: ModelSlots = ctx["model_slots"]
        redis: Redis = ctx["redis"]
        arq_id: str = ctx["job_id"]
        await crash_recovery.running(redis, deps.worker_id, arq_id)
        deps.metrics.job_started(kind, time.time() - _enqueued(ctx))
        try:
            with deps.metrics.job(kind) as seen:
                async with slots.job(job.job_id(), job.installation_id, _enqueued(ctx)):
                    outcome = await work
                seen.outcome = outcome.state
        finally:
            await crash_recovery.ended(redis, deps.worker_id, arq_id)
        return _as_result(outcome)


def _enqueued(ctx: dict[str, Any]) -> float:
    """When arq queued the job (kept across its retries): its age in the fair order."""
    enqueued = ctx.get("enqueue_time")
    return enqueued.timestamp() if enqueued is not None else time.time()


def model_slots(settings: Settings, redis: Redis, worker_id: str, places: int) -> ModelSlots:
    """Admission to the model server for this worker's jobs (workers/admission.py)."""
    limits = AdmissionLimits(
        max_runs=settings.model_max_runs,
        max_runs_per_installation=settings.model_max_runs_per_installation,
        lease_ttl=settings.worker_heartbeat * BEATS_TO_LIVE,
    )
    admission = Admission(redis, limits)
    url = metrics_url(settings.model_base_url, settings.model_metrics_url)
    thresholds = SaturationThresholds(
        waiting=settings.model_saturation_waiting, kv_cache=settings.model_saturation_kv_cache
    )
    probe = SaturationProbe(admission, url, thresholds) if url else None
    return ModelSlots(
        admission, probe, worker_id=worker_id, places=places,
        queue_timeout=settings.model_queue_timeout,
    )  # fmt: skip


def build_worker(settings: Settings, *, max_jobs: int = 4) -> Worker:
    """A worker running `max_jobs` jobs past admission at once; it takes WORKER_HELD_JOBS more
    from arq to wait for a model slot, so the fair order sees them (workers/admission.py)."""
    worker_id = f"{socket.gethostname()}-{uuid.uuid4().hex[:8]}"
    redis_settings = to_redis(settings.queue_url, patience=WORKER_PATIENCE)
    metrics = WorkerMetrics()
    stopping: list[str] = []

    async def startup(ctx: dict[str, Any]) -> None:
        client = docker.from_env()
        config = pipeline_config(settings)
        sandbox = await asyncio.to_thread(with_image_path, client, config.sandbox)
        config = dataclasses.replace(config, sandbox=sandbox)
        removed = await asyncio.to_thread(reap_orphans, client)
        # Directories that go with sandboxes, left behind by workers that died.
        leftovers = [
            (settings.data_dir / "pool", f"{SLOT_PREFIX}*"),
        ]
        if config.sandbox.scratch_dir is not None:
            leftovers.append((config.sandbox.scratch_dir, f"{RUN_DIR_PREFIX}*"))
        for root, pattern in leftovers:
            await asyncio.to_thread(reap_directories, client, root, pattern)
        # Beat before any job starts a sandbox, so no other worker takes ours for orphans.
        await beat(ctx["redis"], worker_id, settings.worker_heartbeat)
        ctx["liveness"] = asyncio.create_task(
            beat_and_reap(ctx["redis"], client, worker_id, settings.worker_heartbeat, leftovers)
        )
        pool = None
        if settings.sandbox_pool_size:
            pool = SandboxPool(
                client, config.sandbox, size=settings.sandbox_pool_size,
                root=settings.data_dir / "pool", labels={label.WORKER: worker_id},
            )  # fmt: skip
            pool.refill()
        ctx["model_slots"] = model_slots(settings, ctx["redis"], worker_id, max_jobs)
        ctx["deps"] = Deps(
            github=GitHubApp(
                settings.app_id,
                settings.private_key_pem(),
                settings.github_api_url,
                metrics=metrics.github,
            ),
            docker=client,
            model=ModelClient(model_config(settings)),
            mirrors=MirrorCache(settings.data_dir / "mirrors"),
            registry=WorkRegistry(ctx["redis"]),
            config=config,
            worker_id=worker_id,
            ci_ledger=CiLedger(ctx["redis"]),
            runs=RunLogs(ctx["redis"], settings.run_retention_days * 86400, settings.public_url),
            pool=pool,
            metrics=metrics,
            stopping=stopping,
        )
        # Bound like the receiver (WEB_HOST): Prometheus scrapes from outside the container.
        if settings.metrics_port is not None:
            ctx["metrics_exporter"] = MetricsExporter.start(
                metrics, settings.web_host, settings.metrics_port
            )
        log.info("worker.started", worker_id=worker_id, orphans_removed=removed)

    async def shutdown(ctx: dict[str, Any]) -> None:
        liveness: asyncio.Task[None] | None = ctx.get("liveness")
        if liveness is not None:
            liveness.cancel()
        exporter: MetricsExporter | None = ctx.get("metrics_exporter")
        if exporter is not None:
            await asyncio.to_thread(exporter.close)
        slots: ModelSlots | None = ctx.get("model_slots")
        if slots is not None and slots.probe is not None:
            await slots.probe.close()
        deps: Deps | None = ctx.get("deps")
        if deps is not None:
            if deps.pool is not None:
                await deps.pool.close()
            await deps.model.close()
            deps.docker.close()

    config = pipeline_config(settings)
    # A job may wait for its model slot before its run's own time starts.
    timeout = job_time_limit(config.agent, config.test_timeout, config.queue_timeout)
    worker = Worker(
        functions=[
            func(run_solve_issue, name=SOLVE_ISSUE, timeout=timeout, max_tries=2),
            func(run_follow_up, name=FOLLOW_UP, timeout=timeout, max_tries=2),
            # keep_result=0: a later failure of the same commit (a re-run check) may queue a job
            # of the same id again; the worker's record stops a second fix of one commit.
            func(
                run_ci_fix,
                name=CI_FIX,
                timeout=timeout,
                keep_result=0,
                max_tries=config.ci_fix.max_polls() + ci_fix.MAX_STARTS,
            ),
        ],
        redis_settings=redis_settings,
        on_startup=startup,
        on_shutdown=shutdown,
        max_jobs=max_jobs + settings.worker_held_jobs,
        keep_result=24 * 3600,
        allow_abort_jobs=True,
        poll_delay=0.5,
        handle_signals=True,
    )

    def on_stop(signum: Signals) -> None:
        # arq cancels the running jobs next; their tracking comments say why.
        if not stopping:
            stopping.append(SHUTDOWN_REASON)

    worker.on_stop = on_stop
    return worker
