"""Label → first model request on a warm worker with the pool on: the part of a job's latency that
is ours, not the model's, p50 and p99, and where it goes.

The whole app as the end-to-end tests run it (tests/e2e/harness.py): the real receiver and worker
processes (`python -m workers.cli web` / `worker`, SANDBOX_POOL_SIZE=1), a Redis of their own
(append-only file on), the GitHub emulator and the scripted model server, both with every request
timed where it arrives. After a warm-up job (the mirror's first clone, the worker's first model
call), issues are labelled one after another, each once the previous job has finished and the
pool has its sandbox again. A sample runs from sending the signed `issues.labeled` delivery to the
model server receiving that job's first chat completion. The breakdown comes from the same run:
the receiver's answer (the delivery's round trip), queue pick-up (202 → the worker's `job.started`
line), the GitHub REST calls and the mirror fetch (git over HTTP) as the emulator timed them, the
model slot (`model_slot.admitted`'s wait), the sandbox from the pool (the worker's
`qwen_fix_sandbox_start_seconds`), and the rest (the worker's own work between those calls).

    python -m benchmarks.first_request_latency [--samples 20] [--image TAG] [--logs DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from random import Random
from typing import Any

import docker
from fastapi import FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from benchmarks.webhook_load import start_redis
from sandbox.config import SandboxConfig
from sandbox.docker import DockerSandbox
from sandbox.image import ensure_image
from sandbox.labels import WORKER
from sandbox.pool import POOL_LABEL
from tests.e2e.harness import FILES, REPO, Harness, build_harness, call
from tests.github_emulator.emulator import GitHubEmulator
from tests.model_server import ScriptedModelServer, Turn
from workers.test_command import candidate_commands, choose_in_sandbox

SCRIPT: list[Turn] = [
    call(
        "str_replace_editor", command="str_replace", path="calc.py",
        old_str="    return a - b", new_str="    return a + b",
    ),
    call("submit", summary="`add` subtracted; it now adds."),
    call("submit", summary="`add` subtracted; it now adds."),
]  # fmt: skip
JOB_WAIT = 180.0
FIND_SPEC_PROBE = (
    "python3 -c 'import importlib.util as u, sys; sys.exit(not u.find_spec(\"pytest\"))' "
    ">/dev/null 2>&1 && echo 0; command -v python3 >/dev/null 2>&1 && echo 1"
)
"""The worker's probe for a Python repository, without importing pytest."""


@dataclass(frozen=True)
class Timed:
    """One request as the server that answered it saw it (Unix seconds)."""

    method: str
    path: str
    began: float
    ended: float

    @property
    def seconds(self) -> float:
        return self.ended - self.began


class RequestLog:
    """ASGI middleware: each HTTP request's arrival and answer, in order of arrival."""

    def __init__(self, app: ASGIApp, into: list[Timed]) -> None:
        self.app = app
        self.into = into

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        began, answered = time.time(), [0.0]

        async def timed(message: Message) -> None:
            if message["type"] == "http.response.start":
                answered[0] = time.time()
            await send(message)

        try:
            await self.app(scope, receive, timed)
        finally:
            ended = answered[0] or time.time()
            self.into.append(Timed(scope["method"], scope["path"], began, ended))


class LoggedModelServer(ScriptedModelServer):
    """The scripted model server, every request's arrival logged."""

    def __init__(self, script: list[Turn], log: list[Timed]) -> None:
        self.log = log  # before the base class builds the app
        super().__init__(script, per_conversation=True)

    def _app(self) -> FastAPI:
        app = super()._app()
        app.add_middleware(RequestLog, into=self.log)
        return app


@dataclass
class Sample:
    """One labelled issue: when each thing happened (Unix s) or how long it took (s)."""

    issue: int
    sent: float
    answered: float
    started: float = 0.0
    admitted: float = 0.0
    agent: float = 0.0
    first_request: float = 0.0
    github: float = 0.0
    github_calls: int = 0
    mirror: float = 0.0
    slot: float = 0.0
    sandbox: float = 0.0
    requests: list[Timed] = field(default_factory=list)
    """Every request GitHub got from the delivery to the job's end (receiver's and worker's)."""

    @property
    def total(self) -> float:
        return self.first_request - self.sent

    @property
    def parts(self) -> dict[str, float]:
        before_slot = self.admitted - self.started
        after_slot = self.agent - self.admitted
        return {
            "webhook answered (signed POST → 2xx)": self.answered - self.sent,
            "queue pick-up (2xx → job.started)": self.started - self.answered,
            "job.started → model slot held": before_slot,
            "  GitHub REST calls (emulator's time)": self.github,
            "  mirror fetch (git over HTTP, first → last)": self.mirror,
            "  waiting for the slot (admission, saturation check)": self.slot,
            "  the rest (clients, config, branch check, image)": (
                before_slot - self.github - self.mirror - self.slot
            ),
            "model slot → agent started": after_slot,
            "  sandbox from the pool (checkout, hand-over)": self.sandbox,
            "  the rest (test-command probe, guidance, setup)": after_slot - self.sandbox,
            "agent started → first request (prompt, request)": self.first_request - self.agent,
        }


@dataclass
class Bench:
    """The running app and what its servers logged."""

    harness: Harness
    redis: subprocess.Popen[bytes]
    github_log: list[Timed]
    model_log: list[Timed]
    metrics_url: str
    worker_id: str = ""
    random: Random = field(default_factory=lambda: Random(7))
    samples: list[Sample] = field(default_factory=list)

    @property
    def worker_log(self) -> Path:
        return self.harness.root / "worker.log"

    def log_lines(self, event: str) -> list[dict[str, Any]]:
        lines = []
        for text in self.worker_log.read_text(errors="replace").splitlines():
            if f'"{event}"' in text:
                try:
                    lines.append(json.loads(text))
                except json.JSONDecodeError:
                    continue
        return lines

    def agent_started(self, before: float) -> float:
        """The newest trajectory's start record before `before`."""
        starts = []
        for path in (self.harness.root / "data" / "trajectories").glob("*.jsonl"):
            first = json.loads(path.read_text().partition("\n")[0])
            if first["time"] <= before:
                starts.append(first["time"])
        return max(starts)

    def sandbox_seconds(self) -> float:
        """The worker's qwen_fix_sandbox_start_seconds sum so far."""
        with urllib.request.urlopen(self.metrics_url, timeout=10) as response:
            for line in response.read().decode().splitlines():
                if line.startswith("qwen_fix_sandbox_start_seconds_sum"):
                    return float(line.split()[-1])
        return 0.0

    def wait_for(self, what: str, check: Callable[[], Any], timeout: float = JOB_WAIT) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = check()
            if found:
                return found
            for role, process in self.harness.processes.items():
                if process.poll() is not None:
                    raise RuntimeError(f"the {role} process exited\n{self.harness.output()}")
            time.sleep(0.05)
        raise RuntimeError(f"timed out waiting for {what}\n{self.harness.output()}")

    def pool_ready(self) -> bool:
        client = docker.from_env()
        try:
            filters = {"label": [f"{WORKER}={self.worker_id}", f"{POOL_LABEL}=1"]}
            return bool(client.api.containers(filters=filters))
        finally:
            client.close()

    def run_job(self, title: str) -> Sample:
        """Label a new issue and follow its job until it has opened its pull request."""
        h = self.harness
        issue = h.emulator.add_issue(REPO, title, "`add(2, 3)` is -1.", "maintainer")
        h.emulator.add_label(REPO, "qwen-fix", issue=issue)
        payload = h.emulator.webhook("issues", "labeled", repo=REPO, sender="maintainer",
                                     issue=issue, label="qwen-fix")  # fmt: skip
        chats_before = len([t for t in self.model_log if t.path.endswith("/chat/completions")])
        sandbox_before = self.sandbox_seconds()
        time.sleep(self.random.uniform(0, 1))  # labels come at any phase of the worker's poll
        sent = time.time()
        delivery = h.emulator.send("issues", payload)
        sample = Sample(issue, sent, time.time())
        if delivery["status_code"] not in (200, 202):
            raise RuntimeError(f"the receiver answered {delivery['status_code']}")
        self.wait_for(f"#{issue}'s pull request", lambda: "Opened #" in (h.tracking(issue) or ""))
        chats = [t for t in self.model_log if t.path.endswith("/chat/completions")]
        sample.first_request = chats[chats_before].began
        started = [line for line in self.log_lines("job.started") if line.get("issue") == issue]
        sample.started = parse_time(started[-1]["timestamp"])
        admitted = self.log_lines("model_slot.admitted")[-1]
        sample.admitted = parse_time(admitted["timestamp"])
        sample.slot = float(admitted.get("waited", 0.0))
        sample.agent = self.agent_started(sample.first_request)
        window = [t for t in self.github_log if sample.started <= t.began < sample.admitted]
        rest = [t for t in window if t.path.startswith("/api/")]
        git = [t for t in window if not t.path.startswith("/api/")]
        sample.github, sample.github_calls = sum(t.seconds for t in rest), len(rest)
        sample.mirror = max(t.ended for t in git) - min(t.began for t in git) if git else 0.0
        sample.sandbox = self.sandbox_seconds() - sandbox_before
        self.wait_for("the pool's next sandbox", self.pool_ready)
        sample.requests = [t for t in self.github_log if t.began >= sent]
        return sample


async def probe_times(image: str, scratch: Path, count: int = 10) -> dict[str, float]:
    """p50 seconds of the worker's test-command probe for the test repository (one sandbox
    command), and of the same check without importing pytest, in one sandbox."""
    checkout = scratch / "probe-checkout"
    checkout.mkdir()
    for name, text in FILES.items():
        (checkout / name).write_text(text)
    client = docker.from_env()
    box = await DockerSandbox.start(
        client, SandboxConfig(image=image, scratch_dir=scratch), checkout,
        labels={"qwen-fix.test": "first-request-latency"},
    )  # fmt: skip
    candidates = candidate_commands(list(FILES), lambda name: FILES[name])
    times: dict[str, list[float]] = {"probe": [], "find_spec": []}
    try:
        for _ in range(count):
            began = time.perf_counter()
            await choose_in_sandbox(box, candidates)
            times["probe"].append(time.perf_counter() - began)
            began = time.perf_counter()
            await box.run(FIND_SPEC_PROBE, cwd=box.workspace)
            times["find_spec"].append(time.perf_counter() - began)
            await asyncio.sleep(0.05)
    finally:
        await box.close()
        client.close()
    return {name: statistics.median(values) for name, values in times.items()}


def parse_time(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(int(share * len(ordered)), len(ordered) - 1)]


def route(request: Timed) -> str:
    """`POST /repos/{owner}/{repo}/issues/{n}/comments`: the path with its names and numbers."""
    parts = request.path.removeprefix("/api/v3").split("/")
    if len(parts) > 3 and parts[1] == "repos":
        parts[2:4] = ["{owner}", "{repo}"]
    elif len(parts) > 2 and parts[2].endswith(".git"):
        parts[1:3] = ["{owner}", "{repo}.git"]
    named = ["{n}" if part.isdigit() else "{sha}" if len(part) == 40 else part for part in parts]
    for segment, placeholder in (("branches", "{branch}"), ("refs", "{ref}")):
        if segment in named and named[-1] != segment:
            named = [*named[: named.index(segment) + 1], placeholder]
    return f"{request.method} {'/'.join(named)}"


def request_lines(samples: list[Sample]) -> list[str]:
    """What one whole job asks of GitHub, from the delivery to the job's end."""
    counts = [Counter(route(t) for t in s.requests) for s in samples]
    writes = [sum(n for r, n in c.items() if not r.startswith("GET")) for c in counts]
    reads = [sum(n for r, n in c.items() if r.startswith("GET")) for c in counts]
    lines = [
        f"GitHub requests per job (a 2-step fix, delivery to pull request), median: "
        f"{statistics.median(reads):g} GET, {statistics.median(writes):g} writes; the last job's:"
    ]
    lines += [f"  {n} × {name}" for name, n in sorted(counts[-1].items())]
    return lines


def report(samples: list[Sample]) -> list[str]:
    totals = [s.total for s in samples]
    lines = [
        f"label → first model request, warm worker, pool on ({len(samples)} jobs, one at a time)",
        f"{'':<56} {'p50':>8} {'p99':>8} {'mean':>8}",
        f"{'total (ours, not the model)':<56} {percentile(totals, 0.5) * 1000:>6.0f} ms "
        f"{percentile(totals, 0.99) * 1000:>6.0f} ms {statistics.mean(totals) * 1000:>6.0f} ms",
    ]
    for name in samples[0].parts:
        values = [s.parts[name] for s in samples]
        lines.append(
            f"  {name:<54} {percentile(values, 0.5) * 1000:>6.0f} ms "
            f"{percentile(values, 0.99) * 1000:>6.0f} ms {statistics.mean(values) * 1000:>6.0f} ms"
        )
    calls = statistics.median(s.github_calls for s in samples)
    lines.append(f"GitHub REST calls between job.started and the first request: {calls:g} (median)")
    lines.append("p99 of this many samples is their largest; the parts' p50s do not add up")
    return lines


def start(scratch: Path, image: str) -> Bench:
    github_log: list[Timed] = []
    model_log: list[Timed] = []
    emulator = GitHubEmulator(scratch / "github")
    emulator.app.add_middleware(RequestLog, into=github_log)
    emulator.start()
    model = LoggedModelServer(SCRIPT, model_log).start()
    redis, redis_port = start_redis(scratch, "first-request")
    harness = build_harness(scratch, emulator, model, f"redis://127.0.0.1:{redis_port}", image)
    harness.env["SANDBOX_POOL_SIZE"] = "1"
    metrics_url = f"http://127.0.0.1:{harness.env['METRICS_PORT']}/metrics"
    harness.start()
    bench = Bench(harness, redis, github_log, model_log, metrics_url)
    started = bench.wait_for("the worker", lambda: bench.log_lines("worker.started"), 120)
    bench.worker_id = str(started[0]["worker_id"])
    bench.wait_for("the pool's first sandbox", bench.pool_ready, 120)
    return bench


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=20)
    parser.add_argument("--image", help="sandbox image (default: build or reuse the recipe's)")
    parser.add_argument("--logs", type=Path, help="keep the receiver's and worker's logs here")
    args = parser.parse_args()
    image = args.image or ensure_image(docker.from_env())
    print(
        f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f} at the start; this "
        "machine may be shared with other Docker test suites, so the figures are pessimistic"
    )
    with tempfile.TemporaryDirectory(prefix="qwen-fix-bench-") as name:
        scratch = Path(name)
        bench = start(scratch, image)
        try:
            bench.run_job("Warm-up: add subtracts")
            samples = [bench.run_job(f"Sample {n}: add subtracts") for n in range(args.samples)]
        finally:
            bench.harness.stop()
            bench.harness.model.stop()
            bench.harness.emulator.stop()
            bench.redis.terminate()
            bench.redis.wait(timeout=10)
            if args.logs is not None:
                args.logs.mkdir(parents=True, exist_ok=True)
                for log in scratch.glob("*.log"):
                    shutil.copy(log, args.logs / log.name)
    print("\n".join(report(samples)))
    print("\n".join(request_lines(samples)))
    with tempfile.TemporaryDirectory(prefix="qwen-fix-bench-") as name:
        probes = asyncio.run(probe_times(image, Path(name)))
    print(
        "test-command probe alone (python3 -c 'import pytest' and `command -v python3`, one "
        f"sandbox command), p50: {probes['probe'] * 1000:.0f} ms; checking with importlib's "
        f"find_spec instead of importing: {probes['find_spec'] * 1000:.0f} ms"
    )
    print(f"load average {os.getloadavg()[0]:.2f} at the end")
    return 0


if __name__ == "__main__":
    sys.exit(main())
