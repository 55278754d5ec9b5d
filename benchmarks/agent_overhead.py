"""Harness overhead per agent step: everything but model time and sandbox time, p50 and p99.

Runs the real loop for N steps against the scripted model server (in a child process, so its
work never competes with the loop for the GIL) and a real DockerSandbox. The model transport
and the sandbox are timed from the outside; a step's overhead is its wall time (between its
trajectory record and the previous one) minus the time spent inside the transport and inside
sandbox calls. Two slices are reported too: reply received → first tool call dispatched, and
last sandbox call finished → next request sent.

    python -m benchmarks.agent_overhead [--steps 200] [--image TAG]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import multiprocessing
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker
import httpx

from sandbox.config import SandboxConfig
from sandbox.docker import DockerSandbox
from sandbox.image import ensure_image
from sandbox.protocol import ExecResult, Sandbox
from workers.agent.loop import AgentConfig, AgentResult, Task, run_agent
from workers.agent.model import ModelClient, ModelConfig

TARGET_P50_MS = 5.0
Interval = tuple[float, float]


def bash_turn(command: str) -> str:
    return (
        f"Next.\n\n<tool_call>\n<function=bash>\n<parameter=command>\n{command}\n"
        "</parameter>\n</function>\n</tool_call>"
    )


def submit_turn() -> str:
    return (
        "Done.\n\n<tool_call>\n<function=submit>\n<parameter=summary>\nbenchmark\n"
        "</parameter>\n</function>\n</tool_call>"
    )


def serve(script: list[str], ports: Any) -> None:
    """Child process: run the scripted server until killed, after reporting its port."""
    from tests.model_server import ScriptedModelServer

    server = ScriptedModelServer(list(script)).start()
    ports.put(server.port)
    while True:
        time.sleep(3600)


@dataclass
class ScriptedServerProcess:
    """The scripted model server in its own process."""

    script: list[str]
    process: multiprocessing.process.BaseProcess | None = None
    port: int = 0

    def __enter__(self) -> ScriptedServerProcess:
        context = multiprocessing.get_context("spawn")
        ports = context.Queue()
        self.process = context.Process(target=serve, args=(self.script, ports), daemon=True)
        self.process.start()
        self.port = ports.get(timeout=60)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.join(timeout=10)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"


class TimedTransport(httpx.AsyncBaseTransport):
    """The real HTTP transport, with the wall-clock interval of each exchange recorded."""

    def __init__(self) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.intervals: list[Interval] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        started = time.time()
        response = await self.inner.handle_async_request(request)
        content = await response.aread()
        self.intervals.append((started, time.time()))
        return httpx.Response(
            response.status_code, headers=response.headers, content=content, request=request
        )

    async def aclose(self) -> None:
        await self.inner.aclose()


@dataclass
class TimedSandbox:
    """A real sandbox whose every call's wall-clock interval is recorded."""

    inner: Sandbox
    intervals: list[Interval] = field(default_factory=list)
    workspace: str = field(init=False)

    def __post_init__(self) -> None:
        self.workspace = self.inner.workspace

    async def run(
        self,
        command: str,
        *,
        timeout: float = 120.0,
        cwd: str | None = None,
        env: Mapping[str, str] | None = None,
    ) -> ExecResult:
        started = time.time()
        try:
            return await self.inner.run(command, timeout=timeout, cwd=cwd, env=env)
        finally:
            self.intervals.append((started, time.time()))

    async def read_file(self, path: str) -> bytes:
        started = time.time()
        try:
            return await self.inner.read_file(path)
        finally:
            self.intervals.append((started, time.time()))

    async def write_file(self, path: str, data: bytes) -> None:
        started = time.time()
        try:
            await self.inner.write_file(path, data)
        finally:
            self.intervals.append((started, time.time()))

    async def diff(self) -> str:
        started = time.time()
        try:
            return await self.inner.diff()
        finally:
            self.intervals.append((started, time.time()))

    async def close(self) -> None:
        await self.inner.close()


def scratch_repo(root: Path, files: Mapping[str, str]) -> Path:
    """A committed git repository holding `files`."""
    repo = root / "repo"
    repo.mkdir()
    for name, text in files.items():
        (repo / name).write_text(text)
    git = ["git", "-C", str(repo), "-c", "user.name=b", "-c", "user.email=b@example.com"]
    subprocess.run([*git, "init", "-q", "-b", "main"], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "base"], check=True)
    return repo


def within(intervals: list[Interval], start: float, end: float) -> list[Interval]:
    return [(a, b) for a, b in intervals if start <= a < end]


def busy(intervals: list[Interval]) -> float:
    return sum(b - a for a, b in intervals)


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(int(share * len(ordered)), len(ordered) - 1)]


@dataclass
class StepTimes:
    """Per-step milliseconds of harness overhead and its two slices."""

    overhead: list[float] = field(default_factory=list)
    reply_to_dispatch: list[float] = field(default_factory=list)
    done_to_request: list[float] = field(default_factory=list)


def step_times(trajectory: Path, model: list[Interval], sandbox: list[Interval]) -> StepTimes:
    records = [json.loads(line) for line in trajectory.read_text().splitlines()]
    marks = [r["time"] for r in records if r["type"] in ("start", "step")]
    times, previous_tool_end = StepTimes(), marks[0]
    for start, end in itertools.pairwise(marks):
        calls, tools = within(model, start, end), within(sandbox, start, end)
        if not calls or not tools:
            continue
        times.overhead.append(1000 * (end - start - busy(calls) - busy(tools)))
        times.reply_to_dispatch.append(1000 * (tools[0][0] - calls[-1][1]))
        times.done_to_request.append(1000 * (calls[0][0] - previous_tool_end))
        previous_tool_end = tools[-1][1]
    # The first step's "done → request" runs from the start record: set-up, not a step.
    times.done_to_request = times.done_to_request[1:]
    return times


async def measure(steps: int, image: str) -> tuple[AgentResult, StepTimes]:
    script = [bash_turn(f"echo step {n}") for n in range(steps)] + [submit_turn()] * 2
    client = docker.from_env(timeout=60)
    with (
        tempfile.TemporaryDirectory(prefix="qwen-fix-bench-") as scratch,
        ScriptedServerProcess(script) as server,
    ):
        repo = scratch_repo(Path(scratch), {"README.md": "benchmark\n"})
        transport = TimedTransport()
        config = ModelConfig(base_url=server.base_url, max_retries=0, timeout=30)
        box = await DockerSandbox.start(
            client, SandboxConfig(image=image), repo, labels={"qwen-fix.bench": "overhead"}
        )
        sandbox = TimedSandbox(box)
        trajectory = Path(scratch) / "run.jsonl"
        try:
            async with ModelClient(config, transport=transport) as model:
                result = await run_agent(
                    Task("benchmark", "benchmark"),
                    sandbox,
                    model,
                    AgentConfig(max_steps=steps + 2),
                    trajectory=trajectory,
                )
        finally:
            await sandbox.close()
            client.close()
        return result, step_times(trajectory, transport.intervals, sandbox.intervals)


def report(name: str, values: list[float]) -> str:
    p50, p99 = percentile(values, 0.5), percentile(values, 0.99)
    return f"{name:<34} p50 {p50:7.3f} ms   p99 {p99:7.3f} ms   (n={len(values)})"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--image", help="sandbox image (default: build or reuse the recipe's)")
    args = parser.parse_args()
    image = args.image or ensure_image(docker.from_env())
    result, times = asyncio.run(measure(args.steps, image))
    if result.exit_status != "submitted":
        print(f"the run ended with {result.exit_status}: {result.reason}", file=sys.stderr)
        return 1
    print(f"agent harness overhead over {len(times.overhead)} steps (model and sandbox excluded)")
    print(report("overhead per step", times.overhead))
    print(report("  reply received → tool dispatched", times.reply_to_dispatch))
    print(report("  command done → next request sent", times.done_to_request))
    # The history grows every step; this shows whether the per-step cost grows with it.
    print(report("overhead, first 20 steps", times.overhead[:20]))
    print(report("overhead, last 20 steps", times.overhead[-20:]))
    p50 = statistics.median(times.overhead)
    verdict = "met" if p50 <= TARGET_P50_MS else "MISSED"
    print(f"target: p50 ≤ {TARGET_P50_MS:.0f} ms per step: {verdict} ({p50:.3f} ms)")
    return 0 if p50 <= TARGET_P50_MS else 1


if __name__ == "__main__":
    sys.exit(main())
