"""Webhook receiver under load against Probot, both measured under wrk in one run.

Ours is the real `python -m workers.cli web` process over a real Redis (started here, append-only
file on, on a free port) and the GitHub emulator (installation token, permission check, the
repository's config, the 👀 reaction). The anchor is Probot (npm `probot`, installed into a
scratch folder outside the repository) running `benchmarks/anchors/probot_app.mjs`, an app with
one `issues.labeled` handler, under probot's own `run(app)`. Both get the same signed
`issues.labeled` body (octokit's example through the emulator, ~12 KB) from the same wrk script
(`benchmarks/webhook_load.lua`), with an X-GitHub-Delivery of its own per request. Paths, and
the Probot path each is compared with:

- ignored: a label that is not the trigger. Probot: the same body; its handler returns at once.
- duplicate: the trigger label again, under delivery ids already handled (claimed in Redis).
  Probot has no de-duplication: compared with its handled path.
- trigger: verify, route, claim the delivery, permission check (cached after the first),
  durable enqueue in arq, 202. Probot has no queue: compared with its handled path, where the
  handler reads the label, the sender and the issue.

Afterwards every 202 is checked against Redis: each accepted delivery's job is in arq's queue
once, with its job key, and no job is there without a 202.

`--baseline DIR` also measures the receiver of another checkout (its `bot/` and `workers/`, e.g.
`git archive HEAD bot workers sandbox | tar -x -C DIR`), in the same rounds, on its own Redis.

    python -m benchmarks.webhook_load [--duration 10] [--connections 16] [--threads 1]
        [--rounds 1] [--warmup 2] [--paths ignored,duplicate,trigger] [--baseline DIR]
        [--log-level INFO] [--no-probot] [--logs DIR]
"""

from __future__ import annotations

import argparse
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
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

import redis

from bot.signature import sign
from tests.conftest import free_port, wait_for_port
from tests.github_emulator.emulator import GitHubEmulator

HERE = Path(__file__).parent
LUA = HERE / "webhook_load.lua"
PROBOT_APP = HERE / "anchors" / "probot_app.mjs"
PROBOT_VERSION = "14.3.2"
APP_ID = 4711
SECRET = "webhook-load-secret"
OWNER, NAME = "octo-org", "calc"
REPO = f"{OWNER}/{NAME}"
TRIGGER = "qwen-fix"
OTHER_LABEL = "bug"
DUPLICATE_IDS = 100
"""Delivery ids handled once before the duplicate path sends them again and again."""
ISSUE_BODY = "Adding two numbers subtracts them instead: `calc.add(2, 3)` is -1.\n\n" + "".join(
    f"- note {n}: the test suite has no test of add with negative numbers.\n" for n in range(35)
)
"""An issue text of a realistic length: with it octokit's example is about 12 KB."""
PATHS = ("ignored", "duplicate", "trigger")
ANCHOR = {"ignored": "ignored", "duplicate": "handled", "trigger": "handled"}
"""The Probot path each of ours is compared with."""
EXPECTED = {"ignored": 200, "duplicate": 200, "trigger": 202, "handled": 200}
TARGET_RATIO = 1.0
TARGET_P99_MS = 10.0


@dataclass
class Run:
    """One wrk run: what it counted and measured."""

    requests: int
    seconds: float
    errors: int
    p50_ms: float
    p99_ms: float
    statuses: Counter[int] = field(default_factory=Counter)
    accepted: list[str] = field(default_factory=list)
    """Job ids named by the 202 answers."""
    cpu_seconds: float = 0.0
    """CPU time the server process used during the run (user + system)."""

    @property
    def rate(self) -> float:
        return self.requests / self.seconds

    @property
    def cpu_us(self) -> float:
        """The server's CPU time per delivery: what a busier machine leaves unchanged."""
        return self.cpu_seconds / self.requests * 1e6

    def line(self, name: str) -> str:
        statuses = ", ".join(f"{n} × {s}" for s, n in sorted(self.statuses.items()))
        return (
            f"{name:<28} {self.rate:9,.0f}/s   p50 {self.p50_ms:6.2f} ms   "
            f"p99 {self.p99_ms:6.2f} ms   CPU {self.cpu_us:4.0f} µs/delivery   "
            f"({statuses}; {self.errors} socket errors)"
        )


@dataclass(frozen=True)
class Server:
    """A webhook receiver under test: ours (this tree or a baseline) or Probot."""

    name: str
    process: subprocess.Popen[bytes]
    port: int
    path: str
    redis_port: int = 0
    """Ours only: its own Redis, for the exactly-once count."""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{self.path}"


@dataclass(frozen=True)
class Body:
    file: Path
    signature: str


class Wrk:
    """Runs wrk with `webhook_load.lua`; each run gets delivery ids of its own."""

    def __init__(self, scratch: Path, threads: int, connections: int) -> None:
        self.scratch = scratch
        self.threads = threads
        self.connections = connections
        self.runs = 0

    def run(self, server: Server, body: Body, seconds: float, cycle_ids: str = "") -> Run:
        """Fresh delivery ids, or (`cycle_ids` given) `cycle_ids-0` … `-(DUPLICATE_IDS - 1)`."""
        self.runs += 1
        result = self.scratch / f"wrk-{self.runs}.txt"
        prefix, cycle = (cycle_ids, DUPLICATE_IDS) if cycle_ids else (f"run{self.runs}", 0)
        command = [
            "wrk", f"-t{self.threads}", f"-c{self.connections}", f"-d{seconds:g}s",
            "-s", str(LUA), server.url,
            "--", str(body.file), body.signature, "issues", prefix, str(cycle), str(result),
        ]  # fmt: skip
        cpu_before = cpu_seconds(server.process.pid)
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
        run = parse_wrk(result.read_text())
        run.cpu_seconds = cpu_seconds(server.process.pid) - cpu_before
        return run


def cpu_seconds(pid: int) -> float:
    """User and system CPU time of a process so far (its threads included)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def parse_wrk(text: str) -> Run:
    values: dict[str, int] = {}
    statuses: Counter[int] = Counter()
    accepted: list[str] = []
    for line in text.splitlines():
        key, _, rest = line.partition(" ")
        if key == "status":
            status, count = rest.split()
            statuses[int(status)] += int(count)
        elif key == "accepted":
            accepted.append(json.loads(rest)["detail"])
        else:
            values[key] = int(rest)
    return Run(
        values["requests"],
        values["duration_us"] / 1e6,
        values["errors"],
        values["p50_us"] / 1000,
        values["p99_us"] / 1000,
        statuses,
        accepted,
    )


# --- the processes --------------------------------------------------------------------------


def start_redis(scratch: Path, name: str) -> tuple[subprocess.Popen[bytes], int]:
    binary = shutil.which("redis-server")
    if binary is None:
        sys.exit("redis-server is not installed (apt-get install -y redis-server)")
    port = free_port()
    directory = scratch / f"redis-{name}"
    directory.mkdir()
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(directory),
         "--save", "", "--appendonly", "yes"],
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    wait_for_port(port)
    return process, port


def start_receiver(
    scratch: Path,
    name: str,
    key: str,
    api_url: str,
    redis_port: int,
    source: Path | None,
    log_level: str,
) -> Server:
    """`python -m workers.cli web`, from this tree or (`source`) another checkout."""
    port = free_port()
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(scratch),
        "APP_ID": str(APP_ID),
        "PRIVATE_KEY": key,
        "WEBHOOK_SECRET": SECRET,
        "GITHUB_API_URL": api_url,
        "REDIS_URL": f"redis://127.0.0.1:{redis_port}",
        "DATA_DIR": str(scratch / "data"),
        "WEB_HOST": "127.0.0.1",
        "WEB_PORT": str(port),
        "LOG_LEVEL": log_level,
    }
    if source is not None:
        env["PYTHONPATH"] = str(source.resolve())
    process = subprocess.Popen(
        [sys.executable, "-m", "workers.cli", "web"],
        env=env,
        cwd=scratch,
        stdout=(scratch / f"{name}.log").open("ab"),
        stderr=subprocess.STDOUT,
    )
    wait_for_port(port, timeout=30)
    return Server(name, process, port, "/webhooks/github", redis_port)


def probot_folder() -> Path:
    """probot installed with npm into a scratch folder outside the repository (kept for reuse)."""
    folder = Path(tempfile.gettempdir()) / f"qwen-fix-probot-{PROBOT_VERSION}"
    installed = folder / "node_modules" / "probot" / "package.json"
    if not installed.exists() or json.loads(installed.read_text())["version"] != PROBOT_VERSION:
        folder.mkdir(exist_ok=True)
        (folder / "package.json").write_text('{"name": "probot-anchor", "private": true}\n')
        subprocess.run(
            ["npm", "install", "--no-audit", "--no-fund", "--loglevel=error",
             f"probot@{PROBOT_VERSION}"],
            cwd=folder,
            check=True,
            stdout=subprocess.DEVNULL,
        )  # fmt: skip
    shutil.copy(PROBOT_APP, folder / "app.mjs")
    return folder


def start_probot(scratch: Path, key: str) -> Server:
    """Probot in production mode: JSON log lines (one per request) to a file, like ours."""
    folder = probot_folder()
    port = free_port()
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(scratch),
        "APP_ID": str(APP_ID),
        "PRIVATE_KEY": key,
        "WEBHOOK_SECRET": SECRET,
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "NODE_ENV": "production",
        "LOG_LEVEL": "info",
        "TRIGGER_LABEL": TRIGGER,
    }
    process = subprocess.Popen(
        ["node", "app.mjs"],
        env=env,
        cwd=folder,
        stdout=(scratch / "probot.log").open("ab"),
        stderr=subprocess.STDOUT,
    )
    wait_for_port(port, timeout=30)
    return Server("Probot", process, port, "/api/github/webhooks")


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        # A receiver still waiting on background work (the old one's paced reactions).
        process.kill()
        process.wait()


# --- the world the deliveries come from -------------------------------------------------------


def build_world(emulator: GitHubEmulator) -> tuple[str, dict[str, bytes]]:
    """The app, its installation, a repository and an issue; the bodies sent, by label."""
    key = emulator.add_app(APP_ID, slug="qwen-fix")
    installation = emulator.add_installation(APP_ID, OWNER, account_type="Organization")
    emulator.add_repo(OWNER, NAME, {"calc.py": "def add(a, b):\n    return a - b\n"}, installation)
    emulator.set_permission(REPO, "maintainer", "write")
    issue = emulator.add_issue(REPO, "add() subtracts", ISSUE_BODY, "maintainer")
    bodies = {}
    for label in (TRIGGER, OTHER_LABEL):
        emulator.add_label(REPO, label, issue=issue)
        payload = emulator.webhook(
            "issues", "labeled", repo=REPO, sender="maintainer", issue=issue, label=label
        )
        bodies[label] = json.dumps(payload, separators=(",", ":")).encode()
    return key, bodies


def deliver(url: str, body: bytes, delivery: str) -> tuple[int, str]:
    request = urllib.request.Request(
        url,
        data=body,
        headers={
            "Content-Type": "application/json",
            "X-GitHub-Event": "issues",
            "X-GitHub-Delivery": delivery,
            "X-Hub-Signature-256": sign(SECRET.encode(), body),
        },
    )
    with urllib.request.urlopen(request, timeout=10) as answer:
        return answer.status, json.loads(answer.read())["detail"]


def answered_202(server: Server) -> int:
    """How many 202s the receiver says it sent (its own /metrics)."""
    url = f"http://127.0.0.1:{server.port}/metrics"
    with urllib.request.urlopen(url, timeout=10) as answer:
        lines = answer.read().decode().splitlines()
    queued = [
        float(line.rsplit(" ", 1)[1])
        for line in lines
        if line.startswith("qwen_fix_webhook_deliveries_total{") and 'outcome="queued"' in line
    ]
    return int(sum(queued))


def exactly_once(server: Server, accepted: list[str]) -> tuple[bool, str]:
    client = redis.Redis(port=server.redis_port)
    members = cast("list[bytes]", client.zrange("arq:queue", 0, -1))
    queued = {member.decode() for member in members}
    job_keys = sum(1 for _ in client.scan_iter("arq:job:*", count=10_000))
    claims = sum(1 for _ in client.scan_iter("qwen-fix:delivery:*", count=10_000))
    client.close()
    sent = answered_202(server)
    missing = [job for job in accepted if job not in queued]
    repeated = len(accepted) - len(set(accepted))
    ok = not missing and not repeated and len(queued) == job_keys == sent
    verdict = "every accepted delivery enqueued exactly once" if ok else "NOT EXACTLY ONCE"
    return ok, (
        f"{server.name}: {sent:,} deliveries answered 202 (the receiver's count; wrk read "
        f"{len(accepted):,}: it stops reading when its time is up); {len(queued):,} jobs in "
        f"arq:queue, {job_keys:,} job keys, {claims:,} delivery claims; 202s without their job: "
        f"{len(missing)}; job ids answered twice: {repeated}; jobs without a 202: "
        f"{len(queued) - sent} → {verdict}"
    )


# --- the run --------------------------------------------------------------------------------


@dataclass
class Row:
    name: str
    runs: list[Run] = field(default_factory=list)
    anchor: Row | None = None

    def median(self, value: str) -> float:
        return statistics.median(getattr(run, value) for run in self.runs)

    def ratio(self) -> float | None:
        if self.anchor is None or not self.anchor.runs:
            return None
        pairs = zip(self.runs, self.anchor.runs, strict=True)
        return statistics.median(ours.rate / theirs.rate for ours, theirs in pairs)


def main(arguments: argparse.Namespace) -> int:
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed (apt-get install -y wrk)")
    with tempfile.TemporaryDirectory(prefix="qwen-fix-webhook-load-") as scratch_name:
        scratch = Path(scratch_name)
        processes: list[subprocess.Popen[bytes]] = []
        emulator = GitHubEmulator(scratch / "github").start()
        try:
            return measure(arguments, scratch, emulator, processes)
        finally:
            for process in reversed(processes):
                stop(process)
            emulator.stop()
            if arguments.logs is not None:
                arguments.logs.mkdir(parents=True, exist_ok=True)
                for log in scratch.glob("*.log"):
                    shutil.copy(log, arguments.logs / log.name)


def measure(
    arguments: argparse.Namespace,
    scratch: Path,
    emulator: GitHubEmulator,
    processes: list[subprocess.Popen[bytes]],
) -> int:
    key, payloads = build_world(emulator)
    bodies = {}
    for label, payload in payloads.items():
        (scratch / f"{label}.json").write_bytes(payload)
        bodies[label] = Body(scratch / f"{label}.json", sign(SECRET.encode(), payload))
    body_of = {"ignored": bodies[OTHER_LABEL], "duplicate": bodies[TRIGGER],
               "trigger": bodies[TRIGGER], "handled": bodies[TRIGGER]}  # fmt: skip

    sources: dict[str, Path | None] = {"qwen-fix": None}
    if arguments.baseline is not None:
        sources["baseline"] = arguments.baseline
    receivers = []
    for name, source in sources.items():
        redis_server, redis_port = start_redis(scratch, name)
        processes.append(redis_server)
        server = start_receiver(
            scratch, name, key, emulator.api_url, redis_port, source, arguments.log_level
        )
        processes.append(server.process)
        receivers.append(server)
    probot = None
    if not arguments.no_probot:
        probot = start_probot(scratch, key)
        processes.append(probot.process)

    paths = [path for path in PATHS if path in arguments.paths.split(",")]
    print(
        f"body: issues.labeled, {len(payloads[TRIGGER]):,} bytes; wrk -t{arguments.threads} "
        f"-c{arguments.connections} -d{arguments.duration:g}s, {arguments.rounds} round(s); "
        f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} before the run"
    )
    wrk = Wrk(scratch, arguments.threads, arguments.connections)
    accepted: dict[str, list[str]] = {server.name: [] for server in receivers}
    for server in receivers:
        for index in range(DUPLICATE_IDS):
            status, detail = deliver(server.url, payloads[TRIGGER], f"dup-{index}")
            if status == 202:
                accepted[server.name].append(detail)

    rows: dict[tuple[str, str], Row] = {}
    plan: list[tuple[Server, str]] = []
    anchors = sorted({ANCHOR[path] for path in paths}, reverse=True)  # ignored, then handled
    for anchor in anchors:
        if probot is not None:
            rows[probot.name, anchor] = Row(f"Probot: {anchor}")
            plan.append((probot, anchor))
        for path in (path for path in paths if ANCHOR[path] == anchor):
            for server in receivers:
                anchor_row = rows.get(("Probot", anchor))
                rows[server.name, path] = Row(f"{server.name}: {path}", anchor=anchor_row)
                plan.append((server, path))

    def load(server: Server, path: str, seconds: float) -> Run:
        cycle_ids = "dup" if path == "duplicate" else ""
        run = wrk.run(server, body_of[path], seconds, cycle_ids)
        if server.name in accepted:
            accepted[server.name] += run.accepted
        return run

    if arguments.warmup > 0:
        for server, path in plan:
            load(server, path, arguments.warmup)
    for round_number in range(1, arguments.rounds + 1):
        print(f"\nround {round_number}")
        for server, path in plan:
            run = load(server, path, arguments.duration)
            rows[server.name, path].runs.append(run)
            print("  " + run.line(rows[server.name, path].name), flush=True)
            unexpected = sum(n for s, n in run.statuses.items() if s != EXPECTED[path])
            if unexpected:
                print(f"  !! {unexpected} answers other than {EXPECTED[path]}")

    print(f"\n{'median over the rounds':<28} {'deliveries/s':>12} {'p50':>10} {'p99':>10}"
          f" {'CPU/delivery':>13}   ratio to Probot, same rounds")  # fmt: skip
    met = True
    for row in rows.values():
        text = (
            f"{row.name:<28} {row.median('rate'):12,.0f} {row.median('p50_ms'):7.2f} ms"
            f" {row.median('p99_ms'):7.2f} ms {row.median('cpu_us'):10.0f} µs"
        )
        ratio = row.ratio()
        if ratio is not None and row.anchor is not None:
            text += f"   {ratio:4.2f}× {row.anchor.name}"
            if row.name.startswith("qwen-fix"):
                met &= ratio >= TARGET_RATIO and row.median("p99_ms") <= TARGET_P99_MS
        print(text)
    if probot is not None:
        print(f"targets (qwen-fix): ≥ {TARGET_RATIO:.1f}× Probot on every path, p99 ≤ "
              f"{TARGET_P99_MS:g} ms → {'met' if met else 'not met'}")  # fmt: skip

    time.sleep(1.0)  # the answers wrk stopped waiting for
    print()
    all_once = True
    for server in receivers:
        once, report = exactly_once(server, accepted[server.name])
        all_once &= once
        print(f"exactly once, {report}")
    print(f"load average after the run {os.getloadavg()[0]:.2f}")
    return 0 if all_once else 1


def parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per wrk run")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--threads", type=int, default=1, help="wrk threads")
    parser.add_argument("--rounds", type=int, default=1, help="every path this many times")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds per path, unmeasured")
    parser.add_argument("--paths", default=",".join(PATHS), help="which of ours to measure")
    parser.add_argument("--baseline", type=Path, help="also measure this checkout's receiver")
    parser.add_argument(
        "--log-level",
        default="INFO",
        help="our receivers' LOG_LEVEL (INFO logs a line per delivery, as Probot does)",
    )
    parser.add_argument("--no-probot", action="store_true", help="measure ours only")
    parser.add_argument("--logs", type=Path, help="keep the servers' logs in this folder")
    return parser.parse_args()


if __name__ == "__main__":
    sys.exit(main(parse_arguments()))
