"""Sandbox latency: start to ready, `echo hi` round trip (p50/p99), and close, over the real engine.

The round trip is measured twice: back to back, and paced with a pause between commands as
an agent's model turn gives. The pause lets the next command's shell start ahead of time,
which is what the channel is built for; back to back, every command also waits for that start.

    python -m benchmarks.sandbox_bench [--starts 10] [--commands 300] [--pause 0.02] [--image TAG]
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import tempfile
import time
from pathlib import Path

import docker

from sandbox.config import SandboxConfig
from sandbox.docker import DockerSandbox
from sandbox.image import ensure_image

LABELS = {"qwen-fix.job": "sandbox-bench"}


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def report(name: str, samples: list[float]) -> None:
    p50, p99 = percentile(samples, 0.5) * 1000, percentile(samples, 0.99) * 1000
    print(f"{name:<32} p50 {p50:8.2f} ms   p99 {p99:8.2f} ms   (n={len(samples)})")


def make_checkout(root: Path) -> Path:
    root.mkdir()
    (root / "README.md").write_text("bench\n")
    git = ["git", "-c", "user.name=b", "-c", "user.email=b@example.com", "-C", str(root)]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "base"], check=True)
    return root


async def measure_starts(
    client: docker.DockerClient, config: SandboxConfig, checkout: Path, count: int
) -> tuple[list[float], list[float]]:
    starts, closes = [], []
    for _ in range(count):
        began = time.perf_counter()
        box = await DockerSandbox.start(client, config, checkout, labels=LABELS)
        starts.append(time.perf_counter() - began)
        began = time.perf_counter()
        await box.close()
        closes.append(time.perf_counter() - began)
    return starts, closes


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


async def main(arguments: argparse.Namespace) -> None:
    client = docker.from_env()
    image = arguments.image or await asyncio.to_thread(ensure_image, client)
    config = SandboxConfig(image=image)
    with tempfile.TemporaryDirectory(prefix="sandbox-bench-") as scratch:
        checkout = make_checkout(Path(scratch) / "checkout")
        starts, closes = await measure_starts(client, config, checkout, arguments.starts)
        box = await DockerSandbox.start(client, config, checkout, labels=LABELS)
        try:
            await measure_round_trips(box, 20, arguments.pause)  # warm-up
            back_to_back = await measure_round_trips(box, arguments.commands, 0.0)
            paced = await measure_round_trips(box, arguments.commands, arguments.pause)
        finally:
            await box.close()
    print(f"image {image}")
    report("start to ready", starts)
    report("close", closes)
    report("echo hi, back to back", back_to_back)
    report(f"echo hi, {arguments.pause * 1000:.0f} ms apart", paced)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--starts", type=int, default=10)
    parser.add_argument("--commands", type=int, default=300)
    parser.add_argument("--pause", type=float, default=0.02)
    parser.add_argument("--image", default=None)
    asyncio.run(main(parser.parse_args()))
