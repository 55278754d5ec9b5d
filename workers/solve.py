"""`qwen-fix solve`: run the agent on a local repository, without GitHub, and return the patch.

The user's repository is never written to. The agent works in a private clone of PATH at HEAD
with the user's uncommitted changes (tracked edits and untracked, non-ignored files) committed
on top, so the patch it returns applies to PATH's working tree as it is now.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal, TextIO

import docker
from pydantic import Field, ValidationError

from bot.settings import ModelSettings, SettingsError, describe_errors
from sandbox.config import SandboxConfig
from sandbox.docker import DockerSandbox
from sandbox.image import ensure_image
from sandbox.protocol import Sandbox
from workers.agent.loop import AgentConfig, AgentResult, run_agent
from workers.agent.model import ModelClient, ModelConfig, ModelError
from workers.agent.observer import AgentObserver
from workers.agent.prompts import read_guidance
from workers.agent.task import Task
from workers.git import git
from workers.progress import ProgressDisplay
from workers.run_settings import agent_config, model_config
from workers.test_command import detect_test_command

SNAPSHOT_MESSAGE = "qwen-fix: the user's uncommitted changes"


class LocalSettings(ModelSettings):
    """What a local run reads from its environment: the model, the agent's limits and the
    sandbox, no GitHub."""

    sandbox_image: str | None = None
    """None: build or reuse the image of the current recipe (`sandbox.image.ensure_image`)."""
    sandbox_memory: str = "4g"
    sandbox_cpus: Annotated[float, Field(gt=0)] = 2.0

    def model(self, base_url: str | None = None, name: str | None = None) -> ModelConfig:
        return model_config(self, base_url=base_url, name=name)

    def sandbox(self, image: str) -> SandboxConfig:
        return SandboxConfig(image=image, memory=self.sandbox_memory, cpus=self.sandbox_cpus)


def load_local_settings() -> LocalSettings:
    """Read the local-run settings or raise SettingsError naming each bad variable."""
    try:
        return LocalSettings()
    except ValidationError as exc:
        raise SettingsError(describe_errors(exc)) from None


@dataclass(frozen=True)
class SolveRequest:
    """One local run: where, what, and how."""

    repo: Path
    issue: str
    model: ModelConfig
    agent: AgentConfig
    image: str | None = None
    test_command: str | None = None
    """None: detected from the repository's files."""
    mode: Literal["fix", "plan"] = "fix"
    trajectory: Path | None = None
    sandbox_memory: str = "4g"
    sandbox_cpus: float = 2.0
    test_timeout: float = 900.0


@dataclass(frozen=True)
class SolveOutcome:
    """What a local run produced; `patch` applies to the user's working tree."""

    result: AgentResult
    patch: str
    test_command: str | None
    test_log: str | None
    """Output of the final test run in the sandbox; None when no test command or no change."""
    tests_passed: bool | None

    @property
    def submitted(self) -> bool:
        return self.result.exit_status == "submitted"


class SolveError(Exception):
    """The run could not start (not a repository, no Docker, ...); the message says why."""


def task_of(issue: str, test_command: str | None, guidance: str, mode: str) -> Task:
    """The issue text's first line is the title, the rest the body."""
    title, _, body = issue.strip().partition("\n")
    plan_or_fix: Literal["fix", "plan"] = "plan" if mode == "plan" else "fix"
    return Task(title.strip(), body.strip(), guidance, test_command, plan_or_fix)


async def head_commit(repo: Path) -> str:
    return (await git("rev-parse", "--verify", "HEAD^{commit}", cwd=repo)).strip()


async def snapshot_repository(repo: Path, dest: Path) -> str:
    """Clone `repo` at HEAD into `dest` and commit its uncommitted changes there; returns HEAD."""
    head = await head_commit(repo)
    await git("clone", "--quiet", "--no-checkout", "--no-hardlinks", str(repo), str(dest))
    await git("checkout", "--quiet", "--detach", head, cwd=dest)
    await git("remote", "remove", "origin", cwd=dest)
    await copy_uncommitted(repo, dest)
    await git("add", "-A", cwd=dest)
    if (await git("status", "--porcelain", cwd=dest)).strip():
        await git("commit", "--quiet", "--no-verify", "-m", SNAPSHOT_MESSAGE, cwd=dest)
    return await head_commit(dest)


async def copy_uncommitted(repo: Path, dest: Path) -> None:
    """Copy changed and untracked files as they are on disk: bytes and modes, no diff."""
    changed = await git("diff", "--name-only", "--no-renames", "-z", "HEAD", cwd=repo)
    untracked = await git("ls-files", "--others", "--exclude-standard", "-z", cwd=repo)
    for name in filter(None, (changed + untracked).split("\0")):
        source, target = repo / name, dest / name
        if target.is_symlink() or target.is_file():
            target.unlink()
        if source.is_symlink() or source.is_file():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target, follow_symlinks=False)


async def tracked_files(workspace: Path) -> list[str]:
    return (await git("ls-files", cwd=workspace)).splitlines()


async def detect_tests(workspace: Path) -> str | None:
    files = await tracked_files(workspace)
    return detect_test_command(files, lambda path: (workspace / path).read_text(errors="replace"))


async def resolve_image(client: docker.DockerClient, image: str | None) -> str:
    return image if image else await asyncio.to_thread(ensure_image, client)


async def final_tests(sandbox: Sandbox, command: str, timeout: float) -> tuple[str, bool]:
    """The test command's log and verdict on the agent's final tree."""
    result = await sandbox.run(command, timeout=timeout, cwd=sandbox.workspace)
    note = f"\n[timed out after {timeout:.0f} s]" if result.timed_out else ""
    return f"$ {command}\n{result.output}{note}\n[exit code {result.exit_code}]", result.ok


async def solve(
    request: SolveRequest,
    client: docker.DockerClient,
    *,
    observer: AgentObserver | None = None,
) -> SolveOutcome:
    """Run the agent on a private snapshot of `request.repo` in a fresh sandbox."""
    if not (request.repo / ".git").exists():
        raise SolveError(f"{request.repo} is not the root of a git repository")
    image = await resolve_image(client, request.image)
    scratch = Path(tempfile.mkdtemp(prefix="qwen-fix-solve-"))
    try:
        workspace = scratch / "workspace"
        await snapshot_repository(request.repo, workspace)
        test_command = request.test_command or await detect_tests(workspace)
        config = SandboxConfig(
            image=image, memory=request.sandbox_memory, cpus=request.sandbox_cpus
        )
        labels = {"qwen-fix.solve": uuid.uuid4().hex[:12]}
        sandbox = await DockerSandbox.start(client, config, workspace, labels=labels)
        try:
            return await run_in_sandbox(request, sandbox, test_command, observer)
        finally:
            await sandbox.close()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


async def run_in_sandbox(
    request: SolveRequest,
    sandbox: Sandbox,
    test_command: str | None,
    observer: AgentObserver | None,
) -> SolveOutcome:
    task = task_of(request.issue, test_command, await read_guidance(sandbox), request.mode)
    on_retry = observer.message if isinstance(observer, ProgressDisplay) else None
    async with ModelClient(request.model, on_retry=on_retry) as model:
        result = await run_agent(
            task, sandbox, model, request.agent, observer=observer, trajectory=request.trajectory
        )
    log, passed = None, None
    if test_command and result.diff.strip():
        log, passed = await final_tests(sandbox, test_command, request.test_timeout)
    return SolveOutcome(result, result.diff, test_command, log, passed)


async def apply_patch(repo: Path, patch: str) -> None:
    """Apply the patch to the user's working tree, all or nothing (`git apply` checks first)."""
    data = patch.encode("utf-8", errors="surrogateescape")
    await git("apply", "--check", "--binary", "-", cwd=repo, stdin=data)
    await git("apply", "--binary", "-", cwd=repo, stdin=data)


@dataclass(frozen=True)
class SolveOutput:
    """Where a command-line run sends its results."""

    stdout: TextIO
    stderr: TextIO
    patch_out: Path | None = None
    apply: bool = False


async def solve_command(request: SolveRequest, output: SolveOutput) -> int:
    """`qwen-fix solve`: run, show progress on stderr, emit the patch; 0 only when submitted."""
    display = ProgressDisplay(output.stderr)
    display.message(f"qwen-fix: solving in a snapshot of {request.repo} with {request.model.model}")
    if not (request.repo / ".git").exists():
        raise SolveError(f"{request.repo} is not the root of a git repository")
    await check_model_server(request.model)
    client = docker.from_env(timeout=60)
    try:
        outcome = await solve(request, client, observer=display)
    finally:
        client.close()
    result = outcome.result
    display.message(
        f"qwen-fix: {result.exit_status} after {result.steps} steps, "
        f"{result.usage.total_tokens} tokens, {result.elapsed:.1f} s: {result.reason}",
        ok=outcome.submitted,
    )
    if outcome.test_log is not None:
        print(outcome.test_log, file=output.stderr)
    if request.mode == "plan":
        print(plan_text(result), file=output.stdout)
    else:
        await emit_patch(request.repo, outcome, output, display)
    return 0 if outcome.submitted else 1


async def check_model_server(config: ModelConfig) -> None:
    """Stop at once, naming the URL, when the model server does not answer: no silent wait."""
    async with ModelClient(config.model_copy(update={"max_retries": 0})) as model:
        try:
            await model.server_info()
        except ModelError as exc:
            raise SolveError(
                f"{exc}. Start the model server, or point MODEL_BASE_URL (or --model-url) at it; "
                "`qwen-fix doctor` checks it"
            ) from None


async def emit_patch(
    repo: Path, outcome: SolveOutcome, output: SolveOutput, display: ProgressDisplay
) -> None:
    if output.patch_out is not None:
        output.patch_out.write_text(outcome.patch, encoding="utf-8", errors="surrogateescape")
        display.message(f"qwen-fix: patch written to {output.patch_out}")
    else:
        output.stdout.write(outcome.patch)
        output.stdout.flush()
    if output.apply and outcome.submitted and outcome.patch.strip():
        await apply_patch(repo, outcome.patch)
        display.message(f"qwen-fix: patch applied to {repo}", ok=True)


def plan_text(result: AgentResult) -> str:
    lines = [f"- [{'x' if item.done else ' '}] {item.text}" for item in result.plan]
    return "\n".join([*lines, "", result.summary or result.reason]).strip()


async def solve_from_args(args: argparse.Namespace, stdout: TextIO, stderr: TextIO) -> int:
    """The `qwen-fix solve` command line, read into a request and run."""
    settings = load_local_settings()
    issue = args.issue if args.issue is not None else args.issue_file.read_text(encoding="utf-8")
    request = SolveRequest(
        repo=args.path.resolve(),
        issue=issue,
        model=settings.model(args.model_url, args.model),
        agent=agent_config(settings, max_steps=args.max_steps),
        image=args.image or settings.sandbox_image,
        test_command=args.test,
        mode="plan" if args.plan_only else "fix",
        trajectory=args.trajectory,
        sandbox_memory=settings.sandbox_memory,
        sandbox_cpus=settings.sandbox_cpus,
        test_timeout=settings.test_timeout,
    )
    output = SolveOutput(stdout, stderr, patch_out=args.patch_out, apply=args.apply)
    return await solve_command(request, output)
