"""`qwen-fix eval`: run the agent on SWE-bench-format instances and judge each patch by its tests.

Each instance runs in its own sandbox (at most `workers` at once). Its patch is then judged in a
FRESH sandbox on a fresh checkout of the base commit, with the model patch and the instance's
`test_patch` applied, as the SWE-bench harness does. An instance is resolved when every
FAIL_TO_PASS test passes and every PASS_TO_PASS test still passes. It is an error when it could
not be run or judged (checkout failed, the model server or the sandbox failed); otherwise it is
unresolved (no patch, a patch that does not apply, or a failing test).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import shlex
import shutil
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import (
    AbstractAsyncContextManager,
    AbstractContextManager,
    asynccontextmanager,
    contextmanager,
)
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, TextIO

import docker
from pydantic import BaseModel, ConfigDict, Field, field_validator

from sandbox.config import SandboxConfig
from sandbox.docker import DockerSandbox
from workers.agent.loop import AgentConfig, AgentResult, run_agent
from workers.agent.model import ModelClient
from workers.agent.prompts import read_guidance
from workers.git import GitError, git
from workers.run_settings import agent_config
from workers.solve import (
    check_model_server,
    detect_tests,
    load_local_settings,
    resolve_image,
    task_of,
)

DEFAULT_TEST_CMD = "python3 -m pytest -rA"
PASSING = frozenset({"PASSED", "XFAIL"})
STATUSES = ("PASSED", "FAILED", "ERROR", "SKIPPED", "XFAIL", "XPASS")
STATUS_LINE = re.compile(rf"^({'|'.join(STATUSES)}) (.+)$")
INFRASTRUCTURE_FAILURES = ("model_error", "sandbox_error")

Verdict = Literal["resolved", "unresolved", "error"]


class Instance(BaseModel):
    """One SWE-bench task; unknown fields (created_at, version, ...) are ignored."""

    model_config = ConfigDict(extra="ignore")

    instance_id: str
    repo: str = Field(description="a local path or a git URL reachable from here")
    base_commit: str
    problem_statement: str
    FAIL_TO_PASS: list[str]
    PASS_TO_PASS: list[str] = Field(default_factory=list)
    test_cmd: str | None = None
    """Command the test ids are appended to; default `python3 -m pytest -rA`."""
    test_patch: str | None = None

    @field_validator("FAIL_TO_PASS", "PASS_TO_PASS", mode="before")
    @classmethod
    def _decode_json_list(cls, value: Any) -> Any:
        # The SWE-bench dataset stores these lists as JSON-encoded strings.
        return json.loads(value) if isinstance(value, str) else value


def load_instances(path: Path) -> list[Instance]:
    lines = path.read_text(encoding="utf-8").splitlines()
    return [Instance.model_validate_json(line) for line in lines if line.strip()]


@dataclass(frozen=True)
class EvalConfig:
    """How a whole evaluation runs."""

    model_name_or_path: str
    agent: AgentConfig
    sandbox: SandboxConfig
    out_dir: Path
    workers: int = 2
    test_timeout: float = 900.0


@dataclass
class InstanceReport:
    """What happened to one instance, as written to report.json."""

    instance_id: str
    verdict: Verdict = "error"
    error: str | None = None
    exit_status: str | None = None
    reason: str | None = None
    steps: int = 0
    prompt_tokens: int = 0
    cached_tokens: int = 0
    completion_tokens: int = 0
    agent_seconds: float = 0.0
    eval_seconds: float = 0.0
    patch_applied: bool | None = None
    tests: dict[str, str] = field(default_factory=dict)
    """Status of each FAIL_TO_PASS and PASS_TO_PASS test id (MISSING when not reported)."""
    model_patch: str = ""


def parse_test_statuses(log: str, test_ids: list[str]) -> dict[str, str]:
    """Each requested id's status from `pytest -rA` summary lines (`STATUS id[ - message]`)."""
    wanted = set(test_ids)
    # Longest first, so `test_a[1-2]` is not taken for a prefix of a longer id.
    by_length = sorted(wanted, key=len, reverse=True)
    statuses = dict.fromkeys(test_ids, "MISSING")
    for line in log.splitlines():
        match = STATUS_LINE.match(line.rstrip())
        if not match:
            continue
        status, rest = match.groups()
        test_id = (
            rest
            if rest in wanted
            else next((t for t in by_length if rest.startswith(t + " - ")), None)
        )
        if test_id is not None:
            statuses[test_id] = status
    return statuses


def is_resolved(instance: Instance, statuses: dict[str, str]) -> bool:
    required = [*instance.FAIL_TO_PASS, *instance.PASS_TO_PASS]
    return all(statuses.get(test_id) in PASSING for test_id in required)


def evaluation_command(instance: Instance) -> str:
    ids = [*instance.FAIL_TO_PASS, *instance.PASS_TO_PASS]
    base = instance.test_cmd or DEFAULT_TEST_CMD
    return f"{base} {' '.join(shlex.quote(test_id) for test_id in dict.fromkeys(ids))}"


async def checkout_instance(instance: Instance, dest: Path) -> None:
    """A detached work tree of the base commit, with no remote left behind."""
    await git("clone", "--quiet", "--no-checkout", "--no-hardlinks", instance.repo, str(dest))
    await git("checkout", "--quiet", "--detach", f"{instance.base_commit}^{{commit}}", cwd=dest)
    await git("remote", "remove", "origin", cwd=dest)


async def apply_patch(tree: Path, patch: str) -> bool:
    """Apply an untrusted patch; git apply refuses paths outside the tree and inside .git."""
    if not patch.strip():
        return True
    data = patch.encode("utf-8", errors="surrogateescape")
    try:
        await git("apply", "--binary", "--whitespace=nowarn", "-", cwd=tree, stdin=data)
    except GitError:
        return False
    return True


class Evaluation:
    """One evaluation run: a shared model client, a Docker client and a worker limit."""

    def __init__(self, config: EvalConfig, client: docker.DockerClient, model: ModelClient):
        self.config = config
        self.client = client
        self.model = model
        self.slots = asyncio.Semaphore(config.workers)
        self.scratch = config.out_dir / "scratch"
        self.run_id = uuid.uuid4().hex[:12]

    async def run(self, instances: list[Instance]) -> list[InstanceReport]:
        self.scratch.mkdir(parents=True, exist_ok=True)
        try:
            return list(await asyncio.gather(*(self.guarded(i) for i in instances)))
        finally:
            shutil.rmtree(self.scratch, ignore_errors=True)

    async def guarded(self, instance: Instance) -> InstanceReport:
        async with self.slots:
            report = InstanceReport(instance.instance_id)
            try:
                await self.solve_and_judge(instance, report)
            except Exception as exc:
                report.verdict, report.error = "error", f"{type(exc).__name__}: {exc}"
            return report

    async def solve_and_judge(self, instance: Instance, report: InstanceReport) -> None:
        started = time.monotonic()
        result = await self.solve(instance)
        report.agent_seconds = time.monotonic() - started
        record_agent(report, result)
        if result.exit_status in INFRASTRUCTURE_FAILURES:
            report.verdict, report.error = "error", f"{result.exit_status}: {result.reason}"
            return
        started = time.monotonic()
        await self.judge(instance, report)
        report.eval_seconds = time.monotonic() - started

    async def solve(self, instance: Instance) -> AgentResult:
        with self.workspace(instance, "solve") as workspace:
            await checkout_instance(instance, workspace)
            test_command = await detect_tests(workspace)
            async with self.sandbox(instance, workspace, "solve") as sandbox:
                guidance = await read_guidance(sandbox)
                task = task_of(instance.problem_statement, test_command, guidance, "fix")
                trajectory = self.config.out_dir / "trajectories" / f"{instance.instance_id}.jsonl"
                return await run_agent(
                    task, sandbox, self.model, self.config.agent, trajectory=trajectory
                )

    async def judge(self, instance: Instance, report: InstanceReport) -> None:
        """Fresh checkout + model patch + test patch, then the listed tests in a fresh sandbox."""
        with self.workspace(instance, "eval") as workspace:
            await checkout_instance(instance, workspace)
            report.patch_applied = await apply_patch(workspace, report.model_patch)
            if not report.patch_applied:
                report.verdict = "unresolved"
                return
            if instance.test_patch and not await apply_patch(workspace, instance.test_patch):
                raise RuntimeError("the instance's test_patch does not apply")
            async with self.sandbox(instance, workspace, "eval") as sandbox:
                command = evaluation_command(instance)
                result = await sandbox.run(command, timeout=self.config.test_timeout)
        if result.timed_out:
            raise RuntimeError(f"the tests ran past {self.config.test_timeout:.0f} s")
        ids = [*instance.FAIL_TO_PASS, *instance.PASS_TO_PASS]
        report.tests = parse_test_statuses(result.output, ids)
        report.verdict = "resolved" if is_resolved(instance, report.tests) else "unresolved"

    def workspace(self, instance: Instance, purpose: str) -> AbstractContextManager[Path]:
        return scratch_workspace(self.scratch, f"{safe_name(instance.instance_id)}-{purpose}-")

    def sandbox(
        self, instance: Instance, workspace: Path, purpose: str
    ) -> AbstractAsyncContextManager[DockerSandbox]:
        labels = {"qwen-fix.eval": self.run_id, "qwen-fix.purpose": purpose}
        labels["qwen-fix.instance"] = instance.instance_id
        return sandbox_over(self.client, self.config.sandbox, workspace, labels)


def safe_name(instance_id: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", instance_id)[:80]


def record_agent(report: InstanceReport, result: AgentResult) -> None:
    report.exit_status, report.reason = result.exit_status, result.reason
    report.steps, report.model_patch = result.steps, result.diff
    usage = result.usage
    report.prompt_tokens, report.cached_tokens = usage.prompt_tokens, usage.cached_tokens
    report.completion_tokens = usage.completion_tokens


@contextmanager
def scratch_workspace(root: Path, prefix: str) -> Iterator[Path]:
    """A `workspace` path inside a temporary directory under `root`, removed afterwards."""
    with tempfile.TemporaryDirectory(prefix=prefix, dir=root) as directory:
        yield Path(directory) / "workspace"


@asynccontextmanager
async def sandbox_over(
    client: docker.DockerClient, config: SandboxConfig, workspace: Path, labels: dict[str, str]
) -> AsyncIterator[DockerSandbox]:
    box = await DockerSandbox.start(client, config, workspace, labels=labels)
    try:
        yield box
    finally:
        await box.close()


def summary_line(reports: list[InstanceReport]) -> str:
    """`resolved 1/3 (33.3%) · unresolved 1 · error 1`."""
    total = len(reports)
    counts = {v: sum(r.verdict == v for r in reports) for v in ("resolved", "unresolved", "error")}
    share = 100 * counts["resolved"] / total if total else 0.0
    return (
        f"resolved {counts['resolved']}/{total} ({share:.1f}%) · "
        f"unresolved {counts['unresolved']} · error {counts['error']}"
    )


def write_outputs(config: EvalConfig, reports: list[InstanceReport]) -> None:
    """predictions.jsonl (SWE-bench format) and report.json in `config.out_dir`."""
    out = config.out_dir
    out.mkdir(parents=True, exist_ok=True)
    with (out / "predictions.jsonl").open("w", encoding="utf-8", errors="surrogateescape") as file:
        for report in reports:
            prediction = {
                "instance_id": report.instance_id,
                "model_name_or_path": config.model_name_or_path,
                "model_patch": report.model_patch,
            }
            file.write(json.dumps(prediction, ensure_ascii=False) + "\n")
    (out / "report.json").write_text(
        json.dumps(report_document(config, reports), indent=2, ensure_ascii=False) + "\n",
        encoding="utf-8",
        errors="surrogateescape",
    )


def report_document(config: EvalConfig, reports: list[InstanceReport]) -> dict[str, Any]:
    def ids(verdict: Verdict) -> list[str]:
        return [r.instance_id for r in reports if r.verdict == verdict]

    details = {}
    for report in reports:
        detail = asdict(report)
        del detail["instance_id"], detail["model_patch"]
        details[report.instance_id] = detail
    return {
        "model_name_or_path": config.model_name_or_path,
        "total": len(reports),
        "resolved": ids("resolved"),
        "unresolved": ids("unresolved"),
        "error": ids("error"),
        "summary": summary_line(reports),
        "instances": details,
    }


async def evaluate(
    instances: list[Instance],
    config: EvalConfig,
    client: docker.DockerClient,
    model: ModelClient,
) -> list[InstanceReport]:
    """Solve and judge every instance, then write predictions.jsonl and report.json."""
    reports = await Evaluation(config, client, model).run(instances)
    write_outputs(config, reports)
    return reports


async def eval_from_args(args: argparse.Namespace, stdout: TextIO) -> int:
    """The `qwen-fix eval` command line: 0 when every instance ran (resolved or not)."""
    settings = load_local_settings()
    instances = load_instances(args.instances)
    model_config = settings.model(args.model_url, args.model)
    await check_model_server(model_config)
    client = docker.from_env(timeout=60)
    try:
        image = await resolve_image(client, args.image or settings.sandbox_image)
        config = EvalConfig(
            model_name_or_path=model_config.model,
            agent=agent_config(settings, max_steps=args.max_steps),
            sandbox=settings.sandbox(image),
            out_dir=args.out_dir,
            workers=max(args.workers, 1),
            test_timeout=settings.test_timeout,
        )
        async with ModelClient(model_config) as model:
            reports = await evaluate(instances, config, client, model)
    finally:
        client.close()
    for report in reports:
        print(
            f"{report.instance_id}: {report.verdict} ({report.exit_status}, "
            f"{report.steps} steps){' — ' + report.error if report.error else ''}",
            file=stdout,
        )
    print(summary_line(reports), file=stdout)
    print(
        f"wrote {args.out_dir / 'predictions.jsonl'} and {args.out_dir / 'report.json'}",
        file=stdout,
    )
    return 0
