"""Sandbox latency against its anchors (mini-swe-agent, SWE-ReX), measured in one run.

Ours, over the real engine: start to ready (container running, checkout mounted, channel open)
and each part of it, close, the `echo hi` round trip back to back and paced (an agent's model
turn leaves a pause in which the next command's shell starts ahead of time), 1 MiB of output
in one command, and N sandboxes started, used and closed concurrently. Then the anchors, with
the same image on the same engine, in their own venv (`benchmarks/anchors/setup.sh` makes it,
`benchmarks/anchors/measure.py` runs there), and a table of p50/p99 with the ratios.

    python -m benchmarks.sandbox_bench [--starts 10] [--commands 300] [--pause 0.02]
        [--anchor-starts 5] [--anchor-commands 100] [--concurrent 50] [--no-anchors] [--image TAG]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shlex
import socket
import subprocess
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker

from sandbox.base_commit import read_head_commit
from sandbox.config import SandboxConfig
from sandbox.docker import RUN_MOUNT, DockerSandbox, give_tree_to
from sandbox.framing import StreamDemuxer
from sandbox.image import ensure_image
from sandbox.labels import container_name
from sandbox.pool import SandboxPool

LABELS = {"qwen-fix.test": "sandbox-bench"}
ANCHORS = Path(__file__).parent / "anchors"
ONE_MIB = 1024 * 1024
TARGETS = {
    "start_s": 0.3,
    "echo_p50_ms": 1.0,
    "echo_p99_ms": 5.0,
    "vs_mini_swe_agent_exec": 80.0,
    "vs_swe_rex_session": 100.0,
}


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


@dataclass
class Row:
    """One line of the table: a measured operation's samples (seconds) or why it has none."""

    name: str
    samples: list[float] = field(default_factory=list)
    missing: str = ""

    @property
    def p50(self) -> float:
        return percentile(self.samples, 0.5)

    @property
    def p99(self) -> float:
        return percentile(self.samples, 0.99)

    def line(self) -> str:
        if not self.samples:
            return f"{self.name:<44} not measured: {self.missing}"
        return (
            f"{self.name:<44} p50 {self.p50 * 1000:9.2f} ms   p99 {self.p99 * 1000:9.2f} ms"
            f"   (n={len(self.samples)})"
        )


def make_checkout(root: Path) -> Path:
    root.mkdir()
    (root / "README.md").write_text("bench\n")
    git = ["git", "-c", "user.name=b", "-c", "user.email=b@example.com", "-C", str(root)]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "base"], check=True)
    return root


async def timed(action: Callable[[], Awaitable[Any]]) -> tuple[float, Any]:
    began = time.perf_counter()
    value = await action()
    return time.perf_counter() - began, value


# --- ours ---


async def measure_starts(
    client: docker.DockerClient, config: SandboxConfig, checkout: Path, count: int
) -> tuple[Row, Row]:
    starts, closes = Row("ours: start to ready"), Row("ours: close")
    for _ in range(count):
        elapsed, box = await timed(
            lambda: DockerSandbox.start(client, config, checkout, labels=LABELS)
        )
        starts.samples.append(elapsed)
        closes.samples.append((await timed(box.close))[0])
    return starts, closes


async def measure_pooled_starts(
    client: docker.DockerClient, config: SandboxConfig, source: Path, root: Path, count: int
) -> Row:
    """A warm pool's start to ready: take a pre-started sandbox, clone the checkout into its
    workspace, hand it over, and get an answer from its shell (the pool refills off the clock)."""
    row = Row("ours: start to ready, warm pool (incl. clone)")
    pool = SandboxPool(client, config, size=1, root=root, labels=LABELS)
    try:
        for _ in range(count):
            await pool.wait_filled()
            started = time.perf_counter()
            slot = await pool.take()
            await asyncio.to_thread(
                subprocess.run,
                ["git", "-c", f"safe.directory={slot.workspace_dir}", "clone", "-q",
                 str(source), str(slot.workspace_dir)],
                check=True,
            )  # fmt: skip
            box = await slot.ready(container_name("sandbox-bench"))
            await box.run("true")
            row.samples.append(time.perf_counter() - started)
            await slot.discard()
    finally:
        await pool.close()
    return row


@contextmanager
def engine_call_times(api: Any, names: tuple[str, ...]) -> Iterator[dict[str, list[float]]]:
    """Time the docker client's calls named `names` while the block runs (then restore them)."""
    times: dict[str, list[float]] = {name: [] for name in names}

    def timer(name: str, call: Callable[..., Any]) -> Callable[..., Any]:
        def timed_call(*args: Any, **kwargs: Any) -> Any:
            began = time.perf_counter()
            try:
                return call(*args, **kwargs)
            finally:
                times[name].append(time.perf_counter() - began)

        return timed_call

    for name in names:
        setattr(api, name, timer(name, getattr(api, name)))
    try:
        yield times
    finally:
        for name in names:
            delattr(api, name)  # the instance attribute hid the class's method


async def measure_start_parts(
    client: docker.DockerClient, config: SandboxConfig, checkout: Path, count: int
) -> list[Row]:
    """Where `DockerSandbox.start`'s time goes: its engine calls timed as it makes them, the
    host-side preparation repeated alone, and the rest (shell init script, thread hand-offs)."""
    calls = ("create_container", "inspect_container", "start", "exec_create", "exec_start")
    host = Row("start part: host: read HEAD, chown checkout")
    rest = Row("start part: shell init + thread hand-offs")
    with engine_call_times(client.api, calls) as times:
        for _ in range(count):
            began = time.perf_counter()
            read_head_commit(checkout)
            give_tree_to(checkout, config.uid, config.gid)
            host.samples.append(time.perf_counter() - began)
            elapsed, box = await timed(
                lambda: DockerSandbox.start(client, config, checkout, labels=LABELS)
            )
            await box.close()
            engine = sum(times[name][-1] for name in calls)
            rest.samples.append(elapsed - engine - host.samples[-1])
    engine_rows = [Row(f"start part: engine: {name}", samples=times[name]) for name in calls]
    return [host, *engine_rows, rest]


async def measure_round_trips(box: DockerSandbox, count: int, pause: float) -> list[float]:
    samples = []
    for _ in range(count):
        began = time.perf_counter()
        result = await box.run("echo hi")
        samples.append(time.perf_counter() - began)
        if result.output != "hi\n":
            raise RuntimeError(f"unexpected output: {result!r}")
        if pause:
            await asyncio.sleep(pause)
    return samples


async def measure_exec_floor(
    client: docker.DockerClient, container_id: str, count: int, pause: float
) -> list[float]:
    """`echo hi` on a bare /bin/sh over one exec socket: the engine's own round trip, the least
    any channel that relays commands through docker exec pays (ours does not)."""
    api = client.api
    exec_id = api.exec_create(container_id, ["/bin/sh"], stdin=True, stdout=True, stderr=True)
    stream = api.exec_start(exec_id["Id"], socket=True)
    raw = getattr(stream, "_sock", stream)
    if not isinstance(raw, socket.socket):
        raise RuntimeError("the docker exec stream is not a plain socket")
    sock = raw.dup()
    stream.close()
    sock.setblocking(False)
    loop = asyncio.get_running_loop()
    demuxer = StreamDemuxer()
    samples = []
    try:
        for _ in range(count):
            began = time.perf_counter()
            await loop.sock_sendall(sock, b"echo hi\n")
            received = b""
            while received != b"hi\n":
                received += demuxer.feed(await loop.sock_recv(sock, 65536))
            samples.append(time.perf_counter() - began)
            if pause:
                await asyncio.sleep(pause)
    finally:
        sock.close()
    return samples


async def measure_fifo_floor(box: DockerSandbox, count: int, pause: float) -> list[float]:
    """`echo hi` from a bare `while read` loop over two FIFOs in the sandbox's run directory:
    the path our channel takes, without framing, state or a per-command shell."""
    names = ("bench-in", "bench-out")
    for name in names:
        os.mkfifo(box.run_dir / name, 0o600)
        os.chown(box.run_dir / name, box.config.uid, box.config.gid)
    ends = [os.open(box.run_dir / name, os.O_RDWR | os.O_NONBLOCK) for name in names]
    loop_script = "exec 3<>bench-in 4>bench-out; while read x <&3; do echo hi >&4; done"
    await box.run(f"sh -c {shlex.quote(loop_script)} >/dev/null 2>&1 &", cwd=RUN_MOUNT)
    loop = asyncio.get_running_loop()
    arrived = bytearray()
    waiter: asyncio.Future[None] | None = None

    def readable() -> None:
        arrived.extend(os.read(ends[1], 65536))
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    loop.add_reader(ends[1], readable)
    samples = []
    try:
        for _ in range(count):
            began = time.perf_counter()
            os.write(ends[0], b"go\n")
            while arrived != b"hi\n":
                waiter = loop.create_future()
                await waiter
            samples.append(time.perf_counter() - began)
            arrived.clear()
            if pause:
                await asyncio.sleep(pause)
    finally:
        loop.remove_reader(ends[1])
        for end in ends:
            os.close(end)
    return samples


async def measure_big_output(box: DockerSandbox, count: int) -> Row:
    row = Row("ours: 1 MiB of output in one command")
    for _ in range(count):
        elapsed, result = await timed(lambda: box.run(f"head -c {ONE_MIB} /dev/zero | tr '\\0' x"))
        if len(result.output) != ONE_MIB or result.truncated or not result.ok:
            raise RuntimeError(f"1 MiB command lost output: {len(result.output)} bytes kept")
        row.samples.append(elapsed)
    return row


async def measure_concurrent(
    client: docker.DockerClient, config: SandboxConfig, scratch: Path, count: int
) -> tuple[float, list[str]]:
    """Start `count` sandboxes at once, run a few commands in each, close them all."""
    checkouts = [make_checkout(scratch / f"concurrent-{index}") for index in range(count)]

    async def one(checkout: Path) -> None:
        box = await DockerSandbox.start(client, config, checkout, labels=LABELS)
        try:
            for _ in range(5):
                result = await box.run("echo hi && git status --short | wc -l")
                if result.output != "hi\n0\n":
                    raise RuntimeError(f"unexpected output: {result!r}")
        finally:
            await box.close()

    began = time.perf_counter()
    outcomes = await asyncio.gather(*(one(each) for each in checkouts), return_exceptions=True)
    errors = [repr(each) for each in outcomes if isinstance(each, BaseException)]
    return time.perf_counter() - began, errors


# --- anchors ---


def measure_anchors(image: str, starts: int, commands: int) -> dict[str, Any]:
    """Run the anchors in their own venv; `{"error": why}` where they could not run."""
    setup = subprocess.run(
        ["bash", str(ANCHORS / "setup.sh"), image], capture_output=True, text=True, check=False
    )
    if setup.returncode != 0:
        why = f"anchors/setup.sh failed: {setup.stderr[-1000:]}"
        return {"mini_swe_agent": {"error": why}, "swe_rex": {"error": why}}
    python, swerex_image = setup.stdout.split()[-2:]
    command = [python, str(ANCHORS / "measure.py"), "--image", image]
    command += ["--swerex-image", swerex_image, "--starts", str(starts)]
    command += ["--commands", str(commands)]
    measured = subprocess.run(command, capture_output=True, text=True, check=False)
    if measured.returncode != 0:
        why = f"anchors/measure.py failed: {measured.stderr[-1000:]}"
        return {"mini_swe_agent": {"error": why}, "swe_rex": {"error": why}}
    results: dict[str, Any] = json.loads(measured.stdout)
    return results


def anchor_row(results: dict[str, Any], anchor: str, key: str, name: str) -> Row:
    measured = results.get(anchor, {})
    if "error" in measured:
        return Row(name, missing=measured["error"].splitlines()[0])
    return Row(name, samples=list(measured.get(key, [])), missing="no samples")


def ratio_line(ours: Row, anchor: Row, target: float | None = None) -> str:
    if not ours.samples or not anchor.samples:
        return f"{ours.name} vs {anchor.name}: not measured"
    p50, p99 = anchor.p50 / ours.p50, anchor.p99 / ours.p99
    verdict = (
        ""
        if target is None
        else f"   target ≥ {target:.0f}×: {'met' if p50 >= target else 'MISSED'}"
    )
    return f"  {anchor.name:<42} {p50:8.1f}× faster at p50, {p99:8.1f}× at p99{verdict}"


async def main(arguments: argparse.Namespace) -> None:
    client = docker.from_env()
    image = arguments.image or await asyncio.to_thread(ensure_image, client)
    config = SandboxConfig(image=image)
    with tempfile.TemporaryDirectory(prefix="sandbox-bench-") as directory:
        scratch = Path(directory)
        checkout = make_checkout(scratch / "checkout")
        starts, closes = await measure_starts(client, config, checkout, arguments.starts)
        # Its own source: the cold starts gave `checkout` to the sandbox user, and git will not
        # clone from a repository another user owns.
        pool_source = make_checkout(scratch / "pool-source")
        pooled = await measure_pooled_starts(
            client, config, pool_source, scratch / "pool", arguments.starts
        )
        parts = await measure_start_parts(client, config, checkout, arguments.starts)
        box = await DockerSandbox.start(client, config, checkout, labels=LABELS)
        try:
            await measure_round_trips(box, 20, arguments.pause)  # warm-up
            back_to_back = Row("ours: echo hi, back to back")
            back_to_back.samples = await measure_round_trips(box, arguments.commands, 0.0)
            paced = Row(f"ours: echo hi, {arguments.pause * 1000:.0f} ms apart")
            paced.samples = await measure_round_trips(box, arguments.commands, arguments.pause)
            apart = f"{arguments.pause * 1000:.0f} ms apart"
            fifo_floor = Row(f"floor: bare sh loop on FIFOs, {apart}")
            fifo_floor.samples = await measure_fifo_floor(box, arguments.commands, arguments.pause)
            exec_floor = Row(f"reference: bare sh, one exec socket, {apart}")
            exec_floor.samples = await measure_exec_floor(
                client, box.container_id, arguments.commands, arguments.pause
            )
        finally:
            await box.close()
        big_config = config.model_copy(update={"output_cap": 2 * ONE_MIB})
        big_box = await DockerSandbox.start(client, big_config, checkout, labels=LABELS)
        try:
            big = await measure_big_output(big_box, 10)
        finally:
            await big_box.close()
        concurrent_time, concurrent_errors = await measure_concurrent(
            client, config, scratch, arguments.concurrent
        )
    anchors: dict[str, Any] = {}
    if not arguments.no_anchors:
        anchors = await asyncio.to_thread(
            measure_anchors, image, arguments.anchor_starts, arguments.anchor_commands
        )
    print_report(
        image,
        [starts, pooled, closes, *parts],
        [paced, back_to_back, fifo_floor, exec_floor],
        big,
        anchors,
        arguments,
    )
    print(
        f"ours: {arguments.concurrent} sandboxes at once (start, 5 commands, close):"
        f" {concurrent_time:.2f} s, {len(concurrent_errors)} errors"
    )
    for error in concurrent_errors[:5]:
        print(f"  {error}")


def print_report(
    image: str,
    start_rows: list[Row],
    echo_rows: list[Row],
    big: Row,
    anchors: dict[str, Any],
    arguments: argparse.Namespace,
) -> None:
    mini_start = anchor_row(anchors, "mini_swe_agent", "start", "mini-swe-agent: start")
    rex_start = anchor_row(anchors, "swe_rex", "start", "SWE-ReX: DockerDeployment start")
    mini_echo = anchor_row(anchors, "mini_swe_agent", "echo", "mini-swe-agent: echo hi (exec)")
    rex_session = anchor_row(anchors, "swe_rex", "session_echo", "SWE-ReX: echo hi (bash session)")
    rex_execute = anchor_row(anchors, "swe_rex", "execute_echo", "SWE-ReX: echo hi (execute)")
    if arguments.no_anchors:
        for row in (mini_start, rex_start, mini_echo, rex_session, rex_execute):
            row.missing = "--no-anchors"
    print(f"image {image}")
    print("\n## start")
    for row in (*start_rows, mini_start, rex_start):
        print(row.line())
    for ours_start in start_rows[:2]:
        if ours_start.samples:
            met = "met" if ours_start.p50 <= TARGETS["start_s"] else "MISSED"
            print(f"  {ours_start.name}: target ≤ {TARGETS['start_s']} s at p50: {met}")
        print(ratio_line(ours_start, mini_start))
        print(ratio_line(ours_start, rex_start))
    print("\n## echo hi round trip")
    for row in (*echo_rows, mini_echo, rex_session, rex_execute):
        print(row.line())
    for ours in echo_rows[:2]:
        p50_met = ours.p50 * 1000 <= TARGETS["echo_p50_ms"]
        p99_met = ours.p99 * 1000 <= TARGETS["echo_p99_ms"]
        print(
            f"{ours.name}: target p50 ≤ {TARGETS['echo_p50_ms']} ms"
            f" {'met' if p50_met else 'MISSED'}, p99 ≤ {TARGETS['echo_p99_ms']} ms"
            f" {'met' if p99_met else 'MISSED'}"
        )
        print(ratio_line(ours, mini_echo, TARGETS["vs_mini_swe_agent_exec"]))
        print(ratio_line(ours, rex_session, TARGETS["vs_swe_rex_session"]))
        print(ratio_line(ours, rex_execute))
    print("\n## output")
    print(big.line())
    if big.samples:
        print(f"  {1 / big.p50:.0f} MiB/s at p50")
    print()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--starts", type=int, default=10)
    parser.add_argument("--commands", type=int, default=300)
    parser.add_argument("--pause", type=float, default=0.02)
    parser.add_argument("--anchor-starts", type=int, default=5)
    parser.add_argument("--anchor-commands", type=int, default=100)
    parser.add_argument("--concurrent", type=int, default=50)
    parser.add_argument("--no-anchors", action="store_true", help="measure ours only")
    parser.add_argument("--image", default=None)
    asyncio.run(main(parser.parse_args()))
