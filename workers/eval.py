"""`qwen-fix eval`: run the agent on SWE-bench instances and judge each patch as SWE-bench does.

Every instance is checked first, before any model time is spent on it: its repository clones,
its base commit exists, its test patch applies, its image is there. Then the agent works in its
own sandbox (at most `workers` at once), and its patch is judged in a FRESH sandbox on a fresh
checkout of the base commit, with the model patch and the instance's `test_patch` applied: the
test files the test patch touches run with the instance's test command, and the log is read with
SWE-bench's own parser (workers/test_logs.py). An instance is resolved when every FAIL_TO_PASS
test passes and every PASS_TO_PASS test still passes; unresolved when the patch is missing,
does not apply, or a test fails; an error when it could not be run or judged, which includes a
log in which none of the listed tests appears.
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
from docker.errors import DockerException, ImageNotFound

from sandbox.config import SandboxConfig
from sandbox.docker import DockerSandbox
from workers.agent.loop import AgentConfig, AgentResult, run_agent
from workers.agent.model import ModelClient
from workers.agent.prompts import read_guidance
from workers.eval_instances import Instance, InstanceFileError, RepoSource, load_instances
from workers.git import GitError, git
from workers.run_settings import agent_config
from workers.solve import (
    check_model_server,
    detect_tests,
    load_local_settings,
    resolve_image,
    task_of,
)
from workers.test_logs import PASSED, XFAIL, LogReader, family_of, reader_for

PASSING = frozenset({PASSED, XFAIL})
DEFAULT_COMMANDS = {
    "pytest": "python3 -m pytest -rA",
    "unittest": "python3 -m unittest -v",
    "sympy": "bin/test -C --verbose",
}
INFRASTRUCTURE_FAILURES = ("model_error", "sandbox_error")
LOG_KEPT = 20_000
"""Characters of each test log kept in report.json (head and tail)."""
NON_TEST_FILES = (".json", ".png", ".csv", ".txt", ".md", ".jpg", ".jpeg", ".pkl", ".yml", ".yaml")

Verdict = Literal["resolved", "unresolved", "error"]


class InstanceError(Exception):
    """The instance cannot be run or judged; the message says why, in a user's words."""


@dataclass(frozen=True)
class EvalConfig:
    """How a whole evaluation runs."""

    model_name_or_path: str
    agent: AgentConfig
    sandbox: SandboxConfig
    out_dir: Path
    workers: int = 2
    test_timeout: float = 900.0
    repos: RepoSource = field(default_factory=RepoSource)
    predictions: dict[str, str] | None = None
    """Patches to judge as they are, by instance id (SWE-bench's predictions file): no agent."""


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
    billable_tokens: int = 0
    cost: float = 0.0
    check_seconds: float = 0.0
    agent_seconds: float = 0.0
    eval_seconds: float = 0.0
    image: str | None = None
    test_command: str | None = None
    log_parser: str | None = None
    patch_applied: bool | None = None
    tests: dict[str, str] = field(default_factory=dict)
    """Status of each FAIL_TO_PASS and PASS_TO_PASS test (MISSING when the log has none)."""
    test_log: str = ""
    """The judging run's log, its middle cut past LOG_KEPT characters."""
    model_patch: str = ""


def directives_from(test_patch: str | None, command: str) -> list[str]:
    """What the test command runs: the test files the test patch touches, as SWE-bench picks
    them (Django's runtests.py takes dotted labels relative to tests/)."""
    if not test_patch:
        return []
    files = re.findall(r"^diff --git a/.* b/(.*)$", test_patch, re.MULTILINE)
    files = [f for f in dict.fromkeys(files) if not f.endswith(NON_TEST_FILES)]
    if "runtests.py" not in command:
        return files
    return [f[:-3].removeprefix("tests/").replace("/", ".") for f in files if f.endswith(".py")]


def judging_command(instance: Instance) -> tuple[str, LogReader]:
    """The command that runs the instance's tests, and how its log is read."""
    family = family_of(instance.test_cmd or "", instance.log_parser)
    base = instance.test_cmd or DEFAULT_COMMANDS[family]
    targets = directives_from(instance.test_patch, base)
    if not targets and family == "pytest":
        targets = instance.required_tests  # pytest takes node ids
    if not targets and family == "unittest":
        targets = [unittest_target(test) for test in instance.required_tests]
    command = f"{base} {' '.join(shlex.quote(t) for t in targets)}".strip()
    return command, reader_for(command, instance.log_parser)


def unittest_target(test_id: str) -> str:
    """`test_x (pkg.mod.Class.test_x)` (Python >= 3.11) or `test_x (pkg.mod.Class)` as a
    dotted name unittest can run."""
    match = re.fullmatch(r"(\w+) \(([\w.]+)\)", test_id.strip())
    if not match:
        return test_id
    method, where = match.groups()
    return where if where.endswith(f".{method}") else f"{where}.{method}"


def grade(instance: Instance, statuses: dict[str, str]) -> dict[str, str]:
    """Each required test's status; MISSING when the log does not report it."""
    return {test: statuses.get(test, "MISSING") for test in instance.required_tests}


def is_resolved(tests: dict[str, str]) -> bool:
    return all(status in PASSING for status in tests.values())


def trimmed(log: str) -> str:
    if len(log) <= LOG_KEPT:
        return log
    half = LOG_KEPT // 2
    return f"{log[:half]}\n… {len(log) - LOG_KEPT:,} characters cut …\n{log[-half:]}"


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
            with self.workspace(instance, "source") as source:
                try:
                    await self.solve_and_judge(instance, source, report)
                except InstanceError as exc:
                    report.verdict, report.error = "error", str(exc)
                except Exception as exc:
                    report.verdict, report.error = "error", f"{type(exc).__name__}: {exc}"
            return report

    async def solve_and_judge(
        self, instance: Instance, source: Path, report: InstanceReport
    ) -> None:
        started = time.monotonic()
        report.image = await self.check(instance, source)
        report.check_seconds = time.monotonic() - started
        predictions = self.config.predictions
        if predictions is not None:
            if instance.instance_id not in predictions:
                raise InstanceError("the predictions file has no patch for this instance")
            report.model_patch = predictions[instance.instance_id]
        else:
            started = time.monotonic()
            result = await self.solve(instance, source, report.image)
            report.agent_seconds = time.monotonic() - started
            record_agent(report, result)
            if result.exit_status in INFRASTRUCTURE_FAILURES:
                report.verdict, report.error = "error", f"{result.exit_status}: {result.reason}"
                return
        started = time.monotonic()
        await self.judge(instance, source, report)
        report.eval_seconds = time.monotonic() - started

    async def check(self, instance: Instance, source: Path) -> str:
        """Everything that can be checked without the model: returns the sandbox image."""
        try:
            url = self.config.repos.clone_url(instance.repo)
        except ValueError as exc:
            raise InstanceError(str(exc)) from None
        try:
            await git("clone", "--quiet", "--no-checkout", "--no-hardlinks", url, str(source))
        except GitError as exc:
            raise InstanceError(f"cannot clone {instance.repo} from {url}: {exc}") from None
        try:
            await git("cat-file", "-e", f"{instance.base_commit}^{{commit}}", cwd=source)
        except GitError:
            raise InstanceError(
                f"base_commit {instance.base_commit} is not a commit of {instance.repo} ({url})"
            ) from None
        if instance.test_patch:
            with self.workspace(instance, "check") as tree:
                await checkout_base(source, instance.base_commit, tree, shared=True)
                data = instance.test_patch.encode("utf-8", errors="surrogateescape")
                try:
                    await git("apply", "--check", "--binary", "-", cwd=tree, stdin=data)
                except GitError as exc:
                    raise InstanceError(
                        f"test_patch does not apply to base_commit {instance.base_commit}: "
                        f"{str(exc).split(': ', 1)[-1]}"
                    ) from None
        image = instance.image or self.config.sandbox.image
        await present(self.client, image)
        return image

    async def solve(self, instance: Instance, source: Path, image: str) -> AgentResult:
        with self.workspace(instance, "solve") as workspace:
            await checkout_base(source, instance.base_commit, workspace)
            # The instance's test command, without the hidden tests the judge runs.
            test_command = instance.test_cmd or await detect_tests(workspace)
            async with self.sandbox(instance, workspace, "solve", image) as sandbox:
                guidance = await read_guidance(sandbox)
                task = task_of(instance.problem_statement, test_command, guidance, "fix")
                trajectory = self.config.out_dir / "trajectories" / f"{instance.instance_id}.jsonl"
                return await run_agent(
                    task, sandbox, self.model, self.config.agent, trajectory=trajectory
                )

    async def judge(self, instance: Instance, source: Path, report: InstanceReport) -> None:
        """Fresh checkout + model patch + test patch, then its tests in a fresh sandbox."""
        command, reader = judging_command(instance)
        report.test_command, report.log_parser = command, reader.name
        with self.workspace(instance, "eval") as workspace:
            await checkout_base(source, instance.base_commit, workspace)
            report.patch_applied = await apply_patch(workspace, report.model_patch)
            if not report.patch_applied:
                report.verdict = "unresolved"
                return
            if instance.test_patch and not await apply_patch(workspace, instance.test_patch):
                raise InstanceError("the test_patch does not apply on top of the model patch")
            async with self.sandbox(instance, workspace, "eval", report.image) as sandbox:
                result = await sandbox.run(command, timeout=self.config.test_timeout)
        report.test_log = trimmed(result.output)
        if result.timed_out:
            raise InstanceError(f"the tests ran past {self.config.test_timeout:.0f} s")
        report.tests = grade(instance, reader.parse(result.output))
        if all(status == "MISSING" for status in report.tests.values()):
            raise InstanceError(
                f"none of the listed tests appears in the log of `{command}` (read with "
                f"{reader.name}); see test_log in report.json"
            )
        report.verdict = "resolved" if is_resolved(report.tests) else "unresolved"

    def workspace(self, instance: Instance, purpose: str) -> AbstractContextManager[Path]:
        return scratch_workspace(self.scratch, f"{safe_name(instance.instance_id)}-{purpose}-")

    def sandbox(
        self, instance: Instance, workspace: Path, purpose: str, image: str | None = None
    ) -> AbstractAsyncContextManager[DockerSandbox]:
        labels = {"qwen-fix.eval": self.run_id, "qwen-fix.purpose": purpose}
        labels["qwen-fix.instance"] = instance.instance_id
        config = self.config.sandbox
        if image and image != config.image:
            config = config.model_copy(update={"image": image})
        return sandbox_over(self.client, config, workspace, labels)


async def checkout_base(source: Path, commit: str, dest: Path, *, shared: bool = False) -> None:
    """A detached work tree of `commit` from the instance's clone. A sandbox's copy has objects
    of its own (`shared=False`): the clone's are outside its mount, and not its to touch."""
    link = "--shared" if shared else "--no-hardlinks"
    await git("clone", "--quiet", "--no-checkout", link, str(source), str(dest))
    await git("checkout", "--quiet", "--detach", f"{commit}^{{commit}}", cwd=dest)
    await git("remote", "remove", "origin", cwd=dest)


async def present(client: docker.DockerClient, image: str) -> None:
    """The image is on the engine, pulled if need be; else an InstanceError saying why."""
    try:
        await asyncio.to_thread(client.images.get, image)
        return
    except ImageNotFound:
        pass
    try:
        await asyncio.to_thread(client.images.pull, image)
    except DockerException as exc:
        reason = str(exc).splitlines()[0][:300]
        raise InstanceError(
            f"image {image} is not on this engine and could not be pulled ({reason}): build or "
            "load it here, or drop the instance's `image`"
        ) from None


def load_predictions(path: Path) -> dict[str, str]:
    """SWE-bench predictions (`instance_id`, `model_patch` per line) by instance id."""
    found: dict[str, str] = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            found[str(row["instance_id"])] = str(row.get("model_patch") or "")
        except (ValueError, KeyError, TypeError) as exc:
            raise InstanceFileError(f"{path} line {number}: not a prediction ({exc})") from None
    return found


def safe_name(instance_id: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", instance_id)[:80]


def record_agent(report: InstanceReport, result: AgentResult) -> None:
    report.exit_status, report.reason = result.exit_status, result.reason
    report.steps, report.model_patch = result.steps, result.diff
    usage = result.usage
    report.prompt_tokens, report.cached_tokens = usage.prompt_tokens, usage.cached_tokens
    report.completion_tokens = usage.completion_tokens
    report.billable_tokens, report.cost = usage.billable_tokens, result.cost


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
    """The `qwen-fix eval` command line: 0 when every instance was run and judged (resolved or
    not), 1 when any instance errored."""
    settings = load_local_settings()
    try:
        instances = load_instances(args.instances)
        predictions = load_predictions(args.predictions) if args.predictions else None
    except (InstanceFileError, OSError) as exc:
        raise ValueError(str(exc)) from None
    model_config = settings.model(args.model_url, args.model)
    if predictions is None:
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
            repos=RepoSource(args.repos_from, args.mirrors),
            predictions=predictions,
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
    return 1 if any(report.verdict == "error" for report in reports) else 0
