"""Prefix reuse: how much of each request's prompt is a prefix of the previous request's.

Replays a scripted 100-step trajectory (views, searches, command output of varied sizes)
through the real loop and a real sandbox, renders each request as the scripted server's
stand-in for the chat template, and reports the share of each prompt that the previous prompt
already held as a prefix: what a server's prefix cache can reuse. Run once with the default
context window (append-only throughout) and once with a window small enough to force
condensation.

    python -m benchmarks.prefix_reuse [--steps 100] [--image TAG]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import random
import statistics
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker

from benchmarks.agent_overhead import scratch_repo
from sandbox.config import SandboxConfig
from sandbox.docker import DockerSandbox
from sandbox.image import ensure_image
from tests.model_server import ScriptedModelServer, Turn
from tests.model_server.server import common_prefix_length, prompt_text
from workers.agent.loop import AgentConfig, Task, run_agent
from workers.agent.model import ModelClient, ModelConfig

TARGET_SHARE = 0.95
MODULE_LINES = 400


def module_text() -> str:
    """A Python module big enough that views of it look like a real agent's."""
    functions = [
        f"def handler_{n}(request, retries=3):\n"
        f'    """Handle request kind {n}."""\n'
        f"    for attempt in range(retries):\n"
        f"        if request.kind == {n}:\n"
        f"            return process(request, attempt)\n"
        f"    return None\n"
        for n in range(MODULE_LINES // 7)
    ]
    return "\n".join(functions)


def call(name: str, **parameters: Any) -> str:
    lines = ["<tool_call>", f"<function={name}>"]
    for key, value in parameters.items():
        text = value if isinstance(value, str) else json.dumps(value)
        lines += [f"<parameter={key}>", text, "</parameter>"]
    return "I'll look further.\n\n" + "\n".join([*lines, "</function>", "</tool_call>"])


def script(steps: int, seed: int = 7) -> list[Turn]:
    """`steps` varied exploration turns, then submit twice."""
    rng = random.Random(seed)
    turns: list[Turn] = []
    for n in range(steps):
        kind = n % 4
        if kind == 0:
            start = rng.randint(1, MODULE_LINES - 80)
            span = [start, start + rng.randint(10, 70)]
            turns.append(call("str_replace_editor", command="view", path="app.py", view_range=span))
        elif kind == 1:
            turns.append(call("search", pattern=f"kind == {rng.randint(0, 50)}"))
        elif kind == 2:
            turns.append(call("bash", command=f"seq {n} {n + rng.randint(20, 600)}"))
        else:
            turns.append(call("bash", command=f"grep -c handler app.py; echo {n}"))
    return [*turns, call("submit", summary="done"), call("submit", summary="done")]


@dataclass
class Reuse:
    """Per-request prefix shares of one run, and how many condensations it had."""

    shares: list[float]
    condensations: int
    exit_status: str
    final_prompt_tokens: int

    def line(self, name: str) -> str:
        if not self.shares:
            return f"{name:<28} no second request: the run ended with {self.exit_status}"
        below = sum(share < TARGET_SHARE for share in self.shares)
        return (
            f"{name:<28} mean {100 * statistics.mean(self.shares):5.1f}%  "
            f"p50 {100 * statistics.median(self.shares):5.1f}%  "
            f"min {100 * min(self.shares):5.1f}%  below 95%: {below:3d}/{len(self.shares)}  "
            f"condensations: {self.condensations}  "
            f"last prompt ~{self.final_prompt_tokens // 1000}k tokens  ({self.exit_status})"
        )


def prefix_shares(requests: list[dict[str, Any]]) -> list[float]:
    prompts = [prompt_text(request) for request in requests]
    return [
        common_prefix_length(before, after) / len(after)
        for before, after in itertools.pairwise(prompts)
    ]


async def replay(steps: int, image: str, config: AgentConfig) -> Reuse:
    client = docker.from_env(timeout=60)
    with (
        tempfile.TemporaryDirectory(prefix="qwen-fix-bench-") as scratch,
        ScriptedModelServer(script(steps)) as server,
    ):
        repo = scratch_repo(Path(scratch), {"app.py": module_text()})
        box = await DockerSandbox.start(
            client, SandboxConfig(image=image), repo, labels={"qwen-fix.bench": "prefix"}
        )
        trajectory = Path(scratch) / "run.jsonl"
        model_config = ModelConfig(base_url=server.base_url, max_retries=0, max_tokens=4096)
        try:
            async with ModelClient(model_config) as model:
                result = await run_agent(
                    Task("benchmark", "benchmark"), box, model, config, trajectory=trajectory
                )
        finally:
            await box.close()
            client.close()
        events = [json.loads(line) for line in trajectory.read_text().splitlines()]
        condensed = sum(e["type"] == "condensed" and e["characters"] > 0 for e in events)
        status = f"{result.exit_status}: {result.reason}"[:200]
        last = len(prompt_text(server.requests[-1])) // 4 if server.requests else 0
        return Reuse(prefix_shares(server.requests), condensed, status, last)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--image", help="sandbox image (default: build or reuse the recipe's)")
    parser.add_argument(
        "--small-window", type=int, default=20_000, help="context window forcing condensation"
    )
    args = parser.parse_args()
    image = args.image or ensure_image(docker.from_env())
    limits = {"max_steps": args.steps + 2}
    runs = {
        "append-only (262k window)": AgentConfig(**limits),
        f"condensing ({args.small_window // 1000}k window)": AgentConfig(
            **limits, context_window=args.small_window
        ),
    }
    print(f"share of each request's prompt that prefixes the previous one, {args.steps} steps")
    results = {name: asyncio.run(replay(args.steps, image, c)) for name, c in runs.items()}
    for name, reuse in results.items():
        print(reuse.line(name))
    met = all(r.shares and statistics.mean(r.shares) >= TARGET_SHARE for r in results.values())
    print(f"target: mean ≥ {100 * TARGET_SHARE:.0f}% in both runs: {'met' if met else 'MISSED'}")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
