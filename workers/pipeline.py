"""The pipeline of one issue job: config → checkout → sandbox → agent → verify → publish.

The tracking comment on the issue shows each stage, the agent's live to-do list, and at the end
the pull request, the plan, the answer, or the exact reason it stopped and how to retry.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import docker
import structlog
from githubkit import GitHub

from bot.control import WorkRegistry
from bot.github import GitHubApp
from bot.jobs import CiFixJob, FollowUpJob, IssueJob
from bot.repo_config import RepoConfig, RepoConfigError, parse_repo_config
from bot.runs import RunHeader, new_run_id
from sandbox.config import SandboxConfig
from sandbox.docker import DockerSandbox
from sandbox.labels import WORKER as WORKER_LABEL
from sandbox.labels import container_name
from sandbox.pool import SandboxPool, Slot
from workers import failure_reasons
from workers.agent.exits import CUT_SHORT
from workers.agent.loop import AgentConfig, AgentResult, run_agent
from workers.agent.model import ModelClient
from workers.agent.observer import Observers
from workers.agent.task import Task
from workers.change_guard import left_out_markdown
from workers.ci_ledger import CiFixLimits, CiLedger
from workers.git import MirrorCache
from workers.limits import SETUP_TIMEOUT, effective_agent_config
from workers.metrics import WorkerMetrics
from workers.model_slot import QueueTimedOut, hold_model_slot, release_model_slot
from workers.pr_body import (
    PlanItem,
    PullRequestContent,
    RunStats,
    Verification,
    pull_request_body,
    pull_request_title,
)
from workers.publish import (
    NothingToPublish,
    branch_is_protected,
    post_check_run,
    publish_commit,
    request_review,
    upsert_pull_request,
)
from workers.push_target import issue_branch_refusal
from workers.run_log import RunLogs
from workers.sandbox_image import SandboxImageError, prepare_image
from workers.test_command import TestChoice, choose_in_sandbox, configured
from workers.tracking import Progress, TrackingComment, plan_markdown
from workers.verification import verify as verify_change
from workers.workspace import (
    REPO_CONFIG_PATH,
    Checkout,
    clean_up,
    prepare,
    read_trusted,
    sandbox_checkout,
    trusted_guidance,
    trusted_test_candidates,
)

log = structlog.get_logger("qwen_fix.pipeline")


@dataclass(frozen=True, slots=True)
class PipelineConfig:
    """The narrow slice of the settings a job needs."""

    data_dir: Path
    command_name: str
    model_name: str
    agent: AgentConfig
    sandbox: SandboxConfig
    test_timeout: float
    queue_timeout: float = 0.0
    """Seconds a job may wait for a model slot (MODEL_QUEUE_TIMEOUT)."""
    ci_fix: CiFixLimits = field(default_factory=CiFixLimits)


@dataclass(frozen=True, slots=True)
class Deps:
    """Long-lived clients a worker builds once and hands every job."""

    github: GitHubApp
    docker: docker.DockerClient
    model: ModelClient
    mirrors: MirrorCache
    registry: WorkRegistry
    config: PipelineConfig
    worker_id: str
    ci_ledger: CiLedger
    """What the app pushed and tried on each of its branches (workers/ci_fix.py)."""
    runs: RunLogs
    """Where each agent run is published for the run viewer (workers/run_log.py)."""
    pool: SandboxPool | None = None
    """Pre-started sandboxes of the default image (SANDBOX_POOL_SIZE > 0)."""
    stopping: list[str] = field(default_factory=list)
    """Set (one reason) when the worker is shutting down: its jobs are cancelled for that."""
    metrics: WorkerMetrics = field(default_factory=WorkerMetrics)


@dataclass(frozen=True, slots=True)
class Outcome:
    """What a job left on GitHub."""

    state: str
    pr_number: int | None = None
    pr_url: str | None = None
    draft: bool = False
    branch: str | None = None
    commit: str | None = None


class JobFailed(Exception):
    """The job ended without its result; the message is shown on GitHub as the reason."""


@dataclass
class Run:
    """What the agent stage produced inside the sandbox."""

    result: AgentResult
    verification: Verification | None
    patch: str
    test_command: str | None
    config: RepoConfig = field(default_factory=RepoConfig)


HEADLINES = {"fix": "Working on a fix", "plan": "Working on a plan", "ask": "Looking into it"}


async def run_tracked(
    deps: Deps,
    job: IssueJob | FollowUpJob | CiFixJob,
    tracking: TrackingComment,
    work: Any,
    *,
    retry_verb: str = "retry",
) -> Outcome:
    """Run `work` with the tracking comment kept true on success, failure and cancellation;
    a failure says which command tries again."""
    retry = f"To try again, comment `/{deps.config.command_name} {retry_verb}`."
    try:
        outcome: Outcome = await work
        return outcome
    except asyncio.CancelledError:
        reason = await deps.registry.abort_reason(job.job_id())
        if reason is None and deps.stopping:
            # arq runs the job again once a worker is back: no retry command is needed.
            await tracking.finish("stopped", f"Stopped: {deps.stopping[0]}", "")
            log.info("job.stopped", reason=deps.stopping[0])
            raise
        reason = reason or "the job was cancelled"
        await tracking.finish("stopped", f"Stopped: {reason}", retry)
        log.info("job.stopped", reason=reason)
        raise
    except JobFailed as exc:
        await tracking.finish("failed", "Could not finish", f"{exc}\n\n{retry}")
        log.info("job.failed", reason=str(exc))
        raise
    except Exception as exc:
        detail = (
            failure_reasons.describe(exc, deps.config.data_dir)
            or (f"An internal error stopped the job: `{type(exc).__name__}: {exc}`"[:2000])
        )
        await tracking.finish("failed", "Could not finish", f"{detail}\n\n{retry}")
        raise
    finally:
        await deps.registry.finish(job.work_key(), job.job_id())


async def open_tracking(
    deps: Deps,
    job: IssueJob | FollowUpJob | CiFixJob,
    client: GitHub,
    headline: str,
    *,
    pr_url: str | None = None,
) -> TrackingComment:
    """The job's tracking comment, and its run in the run viewer, linked from the comment."""
    if isinstance(job, IssueJob):
        kind, number, mode = "issue", job.issue_number, job.mode
        trigger = "comment" if job.comment_id else "label"
    elif isinstance(job, FollowUpJob):
        kind, number, mode, trigger = "follow_up", job.pull_number, job.mode, job.source
    else:
        kind, number, mode = "ci_fix", job.pull_number, "fix"
        trigger = "request" if job.requested else "ci"
    header = RunHeader(
        id=new_run_id(), job_id=job.job_id(), kind=kind, repository=job.repository,
        number=number, trigger=trigger, requested_by=job.triggered_by, mode=mode,
        headline=headline, pr_url=pr_url,
    )  # fmt: skip
    run = await deps.runs.start(header)
    tracking = TrackingComment(
        client, job.repository, number, Progress(headline, run_url=deps.runs.url(run.id)),
        registry=deps.registry, bot_login=await deps.github.bot_login(), run=run,
    )  # fmt: skip
    await tracking.open()
    return tracking


async def solve_issue(deps: Deps, job: IssueJob) -> Outcome:
    """An issue → a pull request (fix), a plan comment (plan) or an answer (ask)."""
    client = await deps.github.installation(job.installation_id)
    owner, name = job.repository.split("/", 1)
    issue = (await client.rest.issues.async_get(owner, name, job.issue_number)).parsed_data
    tracking = await open_tracking(deps, job, client, HEADLINES[job.mode])
    task = Task(
        title=issue.title,
        body=issue.body or "",
        mode=job.mode,
        request=job.instruction.strip(),
        requested_by=job.triggered_by,
    )
    return await run_tracked(deps, job, tracking, _solve(deps, job, client, task, tracking))


async def _solve(
    deps: Deps, job: IssueJob, client: GitHub, task: Task, tracking: TrackingComment
) -> Outcome:
    found = await prepare(
        deps.github,
        client,
        deps.mirrors,
        job.installation_id,
        job.repository,
        deps.config.data_dir / "jobs" / safe_name(job.job_id()),
    )
    try:
        config = await load_repo_config(found)
        branch = f"{config.branch_prefix}issue-{job.issue_number}"
        if job.mode == "fix":
            protected = await branch_is_protected(client, job.repository, branch)
            refusal = issue_branch_refusal(branch, found.default_branch, protected)
            if refusal is not None:
                raise JobFailed(refusal.reason)
        run = await run_agent_stage(
            deps, job.job_id(), found, task, tracking, config, verify=job.mode == "fix"
        )
        if job.mode == "plan":
            detail = plan_markdown(run.result.plan) + "\n\n" + (run.result.summary or "")
            await tracking.finish("done", "Plan", detail.strip())
            return Outcome("planned")
        if job.mode == "ask":
            await tracking.finish("done", "Answer", run.result.summary or run.result.reason)
            return Outcome("answered")
        if not run.patch.strip():
            raise JobFailed(
                f"The agent made no change ({run.result.exit_status}: {run.result.reason})."
            )
        return await _open_pull_request(deps, job, client, found, task, run, branch, tracking)
    finally:
        clean_up(found)


async def run_agent_stage(
    deps: Deps,
    job_id: str,
    found: Checkout,
    task: Task,
    tracking: TrackingComment,
    config: RepoConfig,
    *,
    verify: bool,
) -> Run:
    """Start the sandbox, run setup, the agent and (with `verify`) the tests.

    Once the agent is done, everything it left running is stopped and its change is read
    before the tests run, so the verdict is about the change that gets published.
    """
    try:
        image = await prepare_image(
            deps.docker, found, config.image, deps.config.sandbox.image,
            announce=lambda line: tracking.update(environment=[line]),
        )  # fmt: skip
    except SandboxImageError as exc:
        raise JobFailed(str(exc)) from None
    await tracking.update(environment=[image.summary])
    try:
        await hold_model_slot(tracking)
    except QueueTimedOut as exc:
        raise JobFailed(str(exc)) from None
    await tracking.update(state="working", headline=tracking.progress.headline)
    starting = time.monotonic()
    sandbox, slot = await _start_sandbox(deps, job_id, found, image.apply(deps.config.sandbox))
    deps.metrics.sandbox_started(time.monotonic() - starting)
    try:
        await _setup(sandbox, config)
        tests = await _choose_tests(found, sandbox, config)
        await tracking.update(environment=[image.summary, tests.summary()])
        sandbox.mark_baseline()
        trajectory = deps.config.data_dir / "trajectories" / f"{safe_name(job_id)}.jsonl"
        if tracking.run is not None:
            tracking.run.jsonl = trajectory
        full_task = replace(
            task,
            guidance=_guidance(await trusted_guidance(found), config),
            test_command=tests.command,
            no_test_reason=tests.agent_note(),
        )
        result = await run_agent(
            full_task,
            sandbox,
            deps.model,
            effective_agent_config(deps.config.agent, config.limits),
            observer=Observers(tracking, deps.metrics),
            trajectory=trajectory,
            events=tracking.run.emit if tracking.run is not None else None,
        )
        await release_model_slot()
        log.info("job.agent_done", exit_status=result.exit_status, steps=result.steps)
        if tracking.run is not None and result.cost > 0:
            await tracking.run.update(cost=result.cost)
        deps.metrics.agent_finished(result)
        await sandbox.stop_processes()
        patch = await sandbox.final_diff()
        if tracking.run is not None:
            await tracking.run.event("diff", patch=patch)
        verification = None
        if verify:
            await tracking.update(state="testing", headline="Running the tests")
            verification = await verify_change(
                sandbox, tests.command, deps.config.test_timeout, metrics=deps.metrics
            )
            if tracking.run is not None:
                await tracking.run.event(
                    "verification", command=verification.command,
                    passed=verification.passed, log=verification.log,
                )  # fmt: skip
    finally:
        await (slot.discard() if slot is not None else sandbox.close())
    return Run(result, verification, patch, tests.command, config)


async def _choose_tests(found: Checkout, sandbox: DockerSandbox, config: RepoConfig) -> TestChoice:
    """The config's `test:` as it is, else the first detected command whose tool the sandbox
    has (looked for after setup, which may install it)."""
    if config.test:
        return configured(config.test)
    return await choose_in_sandbox(sandbox, await trusted_test_candidates(found))


async def _start_sandbox(
    deps: Deps, job_id: str, found: Checkout, config: SandboxConfig
) -> tuple[DockerSandbox, Slot | None]:
    """A pooled sandbox when the worker keeps a pool of this image, else a fresh one; either
    way over a checkout of the base commit that only the sandbox writes to, borrowing the
    mirror's objects from a share it mounts read-only."""
    if deps.pool is not None and _pool_serves(deps.pool, config):
        slot = await deps.pool.take()
        try:
            await sandbox_checkout(deps.mirrors, found, slot.workspace_dir, slot.objects_dir)
            return await slot.ready(container_name(job_id)), slot
        except BaseException:
            await slot.discard()
            raise
    await sandbox_checkout(deps.mirrors, found, found.sandbox_tree, found.sandbox_objects)
    sandbox = await DockerSandbox.start(
        deps.docker, config, found.sandbox_tree,
        labels={WORKER_LABEL: deps.worker_id}, name=container_name(job_id),
        objects_dir=found.sandbox_objects,
    )  # fmt: skip
    return sandbox, None


def _pool_serves(pool: SandboxPool, config: SandboxConfig) -> bool:
    """The pool's sandboxes run this image with this PATH (their lifetime is the pool's own)."""
    ours = (config.image, config.search_path)
    return (pool.config.image, pool.config.search_path) == ours


async def load_repo_config(found: Checkout) -> RepoConfig:
    """The repository's config from its default branch (never from a branch under change)."""
    text = await read_trusted(found, REPO_CONFIG_PATH)
    if text is None:
        return RepoConfig()
    try:
        return parse_repo_config(text)
    except RepoConfigError as exc:
        raise JobFailed(
            f"The repository's config is invalid, so the run did not start.\n\n{exc}"
        ) from None


async def _setup(sandbox: DockerSandbox, config: RepoConfig) -> None:
    """The repository's setup command: the only phase with network, to its allowlist only."""
    if not config.setup:
        return
    result = await sandbox.run_setup(config.setup, allow=config.egress, timeout=SETUP_TIMEOUT)
    if not result.ok:
        raise JobFailed(
            f"The setup command `{config.setup}` failed (exit {result.exit_code}):\n\n"
            f"```\n{result.output[-3000:]}\n```"
        )


async def _open_pull_request(
    deps: Deps,
    job: IssueJob,
    client: GitHub,
    found: Checkout,
    task: Task,
    run: Run,
    branch: str,
    tracking: TrackingComment,
) -> Outcome:
    await tracking.update(state="publishing", headline="Opening a pull request")
    assert run.verification is not None
    title = pull_request_title(job.issue_number, task.title)
    try:
        commit = await publish_commit(
            client, found, run.patch, f"{title}\n\nFixes #{job.issue_number}",
            branch=branch, force=True, signed=run.config.signed_commits,
        )  # fmt: skip
    except NothingToPublish as exc:
        raise JobFailed(f"Nothing of the agent's change could be published.\n\n{exc}") from None
    # A new start for the branch: its CI fixes are counted afresh (workers/ci_fix.py).
    await deps.ci_ledger.started_over(job.repository, branch, commit.sha)
    body = pull_request_body(
        PullRequestContent(
            issue_number=job.issue_number,
            issue_title=task.title,
            summary=run.result.summary or "",
            plan=[PlanItem(item.text, item.done) for item in run.result.plan],
            diff_stat=commit.stat,
            tests=run.verification,
            stats=_stats(deps, run.result),
            command_name=deps.config.command_name,
            left_out=commit.left_out,
            run_url=tracking.progress.run_url,
        )
    )
    cut_short = run.result.exit_status in CUT_SHORT
    draft = {"always": True, "never": False}.get(
        run.config.draft, run.verification.passed is False or cut_short
    )
    number, url = await upsert_pull_request(
        client,
        job.repository,
        head=branch,
        base=found.default_branch,
        title=title,
        body=body,
        draft=draft,
    )
    if tracking.run is not None:
        await tracking.run.update(pr_url=url)
    if run.config.reviewers:
        await request_review(client, job.repository, number, job.triggered_by)
    await post_check_run(
        client, job.repository, commit.sha, run.verification, app_id=deps.github.app_id
    )
    verdict = {
        True: "the tests pass",
        False: "the tests fail, so it is a draft",
        None: "no tests ran",
    }
    left_out = left_out_markdown(commit.left_out)
    detail = f"{url}: {verdict[run.verification.passed]}." + (f"\n\n{left_out}" if left_out else "")
    if cut_short:
        # The run was cut short by a fault: its change is kept, and the job still failed.
        kept = f"The change so far is kept in {'draft ' if draft else ''}#{number}: {detail}"
        stopped = f"The run stopped before the agent finished: {run.result.reason}"
        raise JobFailed(f"{stopped}\n\n{kept}")
    await tracking.finish("done", f"Opened #{number}", detail)
    log.info("job.published", branch=branch, pr=number, draft=draft)
    return Outcome("opened", number, url, draft, branch, commit.sha)


def _stats(deps: Deps, result: AgentResult) -> RunStats:
    return RunStats(
        model=deps.config.model_name,
        turns=result.steps,
        prompt_tokens=result.usage.prompt_tokens,
        cached_tokens=result.usage.cached_tokens,
        completion_tokens=result.usage.completion_tokens,
        seconds=result.elapsed,
        exit_status=result.exit_status,
    )


def _guidance(files: str, config: RepoConfig) -> str:
    if not config.instructions.strip():
        return files
    extra = f"## .github/qwen-fix.yml instructions\n{config.instructions.strip()}"
    return f"{files}\n\n{extra}" if files else extra


def safe_name(job_id: str) -> str:
    """A job id as a file name."""
    return "".join(c if c.isalnum() or c in "-_." else "-" for c in job_id)
