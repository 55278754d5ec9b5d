"""The pipeline of one job: checkout → sandbox → agent → verify → publish.

Every GitHub side effect finds what an earlier run of the same job made before making anything,
because arq runs a job at least once.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import docker
import structlog
from githubkit import GitHub
from githubkit.rest.paginator import Paginator
from githubkit.versions.latest.models import IssueComment, PullRequestSimple

from bot.github import GitHubApp
from bot.jobs import IssueJob
from sandbox.config import SandboxConfig
from sandbox.docker import DockerSandbox
from sandbox.protocol import ExecResult, Sandbox
from workers.agent.loop import AgentConfig, AgentResult, run_agent
from workers.agent.model import ModelClient
from workers.agent.prompts import read_guidance
from workers.agent.task import Task
from workers.git import GitAuth, MirrorCache, checkout, git, resolve
from workers.pr_body import (
    ISSUE_COMMENT_MARKER,
    PlanItem,
    PullRequestContent,
    RunStats,
    Verification,
    issue_comment_failed,
    issue_comment_opened,
    pull_request_body,
    pull_request_title,
)
from workers.test_command import detect_test_command

log = structlog.get_logger("qwen_fix.pipeline")


@dataclass(frozen=True, slots=True)
class PipelineConfig:
    """The narrow slice of the settings a job needs."""

    data_dir: Path
    trigger_label: str
    model_name: str
    agent: AgentConfig
    sandbox: SandboxConfig
    test_timeout: float
    branch_prefix: str = "qwen-fix/issue-"


@dataclass(frozen=True, slots=True)
class Deps:
    """Long-lived clients a worker builds once and hands every job."""

    github: GitHubApp
    docker: docker.DockerClient
    model: ModelClient
    mirrors: MirrorCache
    config: PipelineConfig
    worker_id: str


@dataclass(frozen=True, slots=True)
class _Target:
    """Where the change goes: the remote, its default branch, the base commit, our mirror."""

    clone_url: str
    default_branch: str
    base: str
    mirror: Path
    auth: GitAuth


@dataclass(frozen=True, slots=True)
class Published:
    branch: str
    pr_number: int
    pr_url: str
    draft: bool


class JobFailed(Exception):
    """The job ended without a pull request; the message is shown on the issue."""


async def solve_issue(deps: Deps, job: IssueJob) -> Published:
    """Turn one issue into one pull request, or explain on the issue why not."""
    owner, name = job.repository.split("/", 1)
    client = await deps.github.installation(job.installation_id)
    try:
        return await _solve(deps, job, client)
    except JobFailed as exc:
        await _upsert_issue_comment(
            client,
            owner,
            name,
            job.issue_number,
            issue_comment_failed(str(exc), deps.config.trigger_label),
        )
        raise


async def _solve(deps: Deps, job: IssueJob, client: GitHub) -> Published:
    owner, name = job.repository.split("/", 1)
    repo = (await client.rest.repos.async_get(owner, name)).parsed_data
    issue = (await client.rest.issues.async_get(owner, name, job.issue_number)).parsed_data
    auth = GitAuth(await deps.github.installation_token(job.installation_id))
    mirror = await deps.mirrors.update(repo.clone_url, auth)
    base = await resolve(mirror, f"refs/heads/{repo.default_branch}")
    job_dir = deps.config.data_dir / "jobs" / job.job_id().replace(":", "-")
    shutil.rmtree(job_dir, ignore_errors=True)
    workspace = job_dir / "workspace"
    await checkout(mirror, workspace, base)
    test_command = await _test_command(workspace)
    log.info("job.checked_out", base=base, test_command=test_command)
    try:
        sandbox = await DockerSandbox.start(
            deps.docker,
            deps.config.sandbox,
            workspace,
            labels={"qwen-fix.job": job.job_id(), "qwen-fix.worker": deps.worker_id},
        )
        try:
            task = Task(
                title=issue.title,
                body=issue.body or "",
                guidance=await read_guidance(sandbox),
                test_command=test_command,
                mode=job.mode,
            )
            result = await run_agent(
                task,
                sandbox,
                deps.model,
                deps.config.agent,
                trajectory=deps.config.data_dir / "trajectories" / f"{job_dir.name}.jsonl",
            )
            log.info("job.agent_done", exit_status=result.exit_status, steps=result.steps)
            tests = await _verify(sandbox, test_command, deps.config.test_timeout)
            patch = await sandbox.diff()
        finally:
            await sandbox.close()
        if not patch.strip():
            raise JobFailed(f"the agent made no change ({result.exit_status}: {result.reason}).")
        target = _Target(repo.clone_url, repo.default_branch, base, mirror, auth)
        return await _publish(deps, job, client, issue.title, target, patch, result, tests, job_dir)
    finally:
        shutil.rmtree(job_dir, ignore_errors=True)


async def _test_command(workspace: Path) -> str | None:
    # The sandbox has not started, so this tree is still exactly the worker's own checkout.
    files = (await git("ls-files", cwd=workspace)).splitlines()
    return detect_test_command(files, lambda path: (workspace / path).read_text(errors="replace"))


async def _verify(sandbox: Sandbox, command: str | None, limit: float) -> Verification:
    if command is None:
        return Verification(command=None, passed=None, log="No test command was found.")
    result: ExecResult = await sandbox.run(command, timeout=limit)
    log.info(
        "job.verified", command=command, exit_code=result.exit_code, timed_out=result.timed_out
    )
    note = f"\n[timed out after {limit:.0f} s]" if result.timed_out else ""
    return Verification(command=command, passed=result.ok, log=result.output + note)


async def _publish(
    deps: Deps,
    job: IssueJob,
    client: GitHub,
    issue_title: str,
    target: _Target,
    patch: str,
    result: AgentResult,
    tests: Verification,
    job_dir: Path,
) -> Published:
    owner, name = job.repository.split("/", 1)
    branch = f"{deps.config.branch_prefix}{job.issue_number}"
    tree = job_dir / "publish"
    await checkout(target.mirror, tree, target.base, shared=True)
    # The patch is untrusted data from the sandbox; git apply refuses paths outside the tree
    # and inside .git.
    await git(
        "apply", "--index", "--binary", "--whitespace=nowarn", "-", cwd=tree, stdin=patch.encode()
    )
    diff_stat = await git("diff", "--cached", "--stat", cwd=tree)
    title = pull_request_title(job.issue_number, issue_title)
    await git("commit", "--quiet", "-m", f"{title}\n\nFixes #{job.issue_number}", cwd=tree)
    await git(
        "push",
        "--force",
        "--quiet",
        target.clone_url,
        f"HEAD:refs/heads/{branch}",
        cwd=tree,
        auth=target.auth,
    )
    body = pull_request_body(
        PullRequestContent(
            issue_number=job.issue_number,
            issue_title=issue_title,
            summary=result.summary or "",
            plan=[PlanItem(item.text, item.done) for item in result.plan],
            diff_stat=diff_stat,
            tests=tests,
            stats=RunStats(
                model=deps.config.model_name,
                turns=result.steps,
                prompt_tokens=result.usage.prompt_tokens,
                cached_tokens=result.usage.cached_tokens,
                completion_tokens=result.usage.completion_tokens,
                seconds=result.elapsed,
                exit_status=result.exit_status,
            ),
        )
    )
    draft = tests.passed is False
    pr_number, pr_url = await _upsert_pull_request(
        client,
        owner,
        name,
        head=branch,
        base=target.default_branch,
        title=title,
        body=body,
        draft=draft,
    )
    await _upsert_issue_comment(
        client, owner, name, job.issue_number, issue_comment_opened(pr_url, pr_number, tests)
    )
    log.info("job.published", branch=branch, pr=pr_number, draft=draft)
    return Published(branch=branch, pr_number=pr_number, pr_url=pr_url, draft=draft)


async def _upsert_pull_request(
    client: GitHub,
    owner: str,
    name: str,
    *,
    head: str,
    base: str,
    title: str,
    body: str,
    draft: bool,
) -> tuple[int, str]:
    existing = await client.rest.pulls.async_list(owner, name, head=f"{owner}:{head}", state="open")
    # githubkit's generated `list` annotation is opaque to mypy; the runtime type is this.
    for pr in cast(list[PullRequestSimple], existing.parsed_data):
        await client.rest.pulls.async_update(owner, name, pr.number, title=title, body=body)
        return pr.number, pr.html_url
    created = await client.rest.pulls.async_create(
        owner, name, title=title, body=body, head=head, base=base, draft=draft
    )
    return created.parsed_data.number, created.parsed_data.html_url


async def _upsert_issue_comment(
    client: GitHub, owner: str, name: str, issue_number: int, body: str
) -> None:
    comments: Paginator[IssueComment] = client.rest.paginate(
        client.rest.issues.async_list_comments,
        owner=owner,
        repo=name,
        issue_number=issue_number,
        per_page=100,
    )
    async for comment in comments:
        if ISSUE_COMMENT_MARKER in (comment.body or "") and _by_bot(comment.user):
            await client.rest.issues.async_update_comment(owner, name, comment.id, body=body)
            return
    await client.rest.issues.async_create_comment(owner, name, issue_number, body=body)


def _by_bot(user: object) -> bool:
    return getattr(user, "type", None) == "Bot"
