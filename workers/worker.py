"""The arq worker: builds the long-lived clients once (`ctx`) and runs jobs through the pipeline."""

from __future__ import annotations

import socket
import uuid
from typing import Any

import docker
import structlog
from arq.connections import RedisSettings
from arq.worker import Worker, func

from bot.github import GitHubApp
from bot.jobs import SOLVE_ISSUE, IssueJob
from bot.settings import Settings
from sandbox.config import SandboxConfig
from sandbox.reaper import reap_orphans
from workers.agent.loop import AgentConfig
from workers.agent.model import ModelClient, ModelConfig
from workers.git import MirrorCache
from workers.pipeline import Deps, PipelineConfig, solve_issue

log = structlog.get_logger("qwen_fix.worker")

JOB_MARGIN = 600.0
"""Seconds a job may run past the agent's wall time: checkout, tests and publishing."""


def pipeline_config(settings: Settings) -> PipelineConfig:
    return PipelineConfig(
        data_dir=settings.data_dir,
        trigger_label=settings.trigger_label,
        model_name=settings.model_name,
        agent=AgentConfig(
            max_steps=settings.agent_max_steps,
            max_tokens=settings.agent_max_tokens,
            wall_time=settings.agent_wall_time,
        ),
        sandbox=SandboxConfig(
            image=settings.sandbox_image,
            memory=settings.sandbox_memory,
            cpus=settings.sandbox_cpus,
            pids=settings.sandbox_pids,
            lifetime=settings.sandbox_lifetime,
        ),
        test_timeout=settings.test_timeout,
    )


def model_config(settings: Settings) -> ModelConfig:
    return ModelConfig(
        base_url=settings.model_base_url,
        model=settings.model_name,
        api_key=settings.model_api_key,
        timeout=settings.model_timeout,
    )


async def run_solve_issue(ctx: dict[str, Any], payload: dict[str, Any]) -> dict[str, Any]:
    """arq job: one issue → one pull request."""
    job = IssueJob.model_validate(payload)
    deps: Deps = ctx["deps"]
    with structlog.contextvars.bound_contextvars(
        job_id=ctx.get("job_id"), repo=job.repository, issue=job.issue_number
    ):
        log.info("job.started", triggered_by=job.triggered_by, mode=job.mode)
        published = await solve_issue(deps, job)
        return {
            "pr_number": published.pr_number,
            "pr_url": published.pr_url,
            "draft": published.draft,
            "branch": published.branch,
        }


def build_worker(settings: Settings, *, max_jobs: int = 4) -> Worker:
    worker_id = f"{socket.gethostname()}-{uuid.uuid4().hex[:8]}"

    async def startup(ctx: dict[str, Any]) -> None:
        client = docker.from_env()
        removed = reap_orphans(client)
        ctx["deps"] = Deps(
            github=GitHubApp(settings.app_id, settings.private_key_pem(), settings.github_api_url),
            docker=client,
            model=ModelClient(model_config(settings)),
            mirrors=MirrorCache(settings.data_dir / "mirrors"),
            config=pipeline_config(settings),
            worker_id=worker_id,
        )
        log.info("worker.started", worker_id=worker_id, orphans_removed=removed)

    async def shutdown(ctx: dict[str, Any]) -> None:
        deps: Deps | None = ctx.get("deps")
        if deps is not None:
            await deps.model.close()
            deps.docker.close()

    return Worker(
        functions=[
            func(
                run_solve_issue,
                name=SOLVE_ISSUE,
                timeout=settings.agent_wall_time + JOB_MARGIN,
                max_tries=2,
            ),
        ],
        redis_settings=RedisSettings.from_dsn(settings.redis_url or "redis://127.0.0.1"),
        on_startup=startup,
        on_shutdown=shutdown,
        max_jobs=max_jobs,
        keep_result=24 * 3600,
        handle_signals=True,
    )
