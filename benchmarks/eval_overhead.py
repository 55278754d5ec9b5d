"""Per-instance overhead of `qwen-fix eval` outside the model: checking, the agent's sandbox and
its bookkeeping, and judging, with a model that answers at once.

Runs N small instances (a module with a bug, a pytest file, a test patch) one at a time through
the real evaluation (checks, sandboxes, the judge's fresh checkout and sandbox, its test run)
against the scripted model server, whose replies take no time: what remains is the harness.
Prints p50/p90 per phase and the total, against the target of ≤ 1 s per instance.

    python -m benchmarks.eval_overhead [--instances 10] [--image TAG]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import docker

from benchmarks.agent_overhead import scratch_repo
from sandbox.config import SandboxConfig
from sandbox.image import ensure_image
from tests.model_server import ScriptedModelServer
from workers.agent.loop import AgentConfig
from workers.agent.model import ModelClient, ModelConfig
from workers.eval import EvalConfig, Evaluation, InstanceReport
from workers.eval_instances import Instance

TARGET_SECONDS = 1.0
CALC = "def add(a, b):\n    return a - b\n"
TEST_CALC = "from calc import add\n\n\ndef test_add():\n    assert add(2, 3) == 5\n"
FIX_AND_SUBMIT = (
    "Fixing.\n<tool_call>\n<function=bash>\n<parameter=command>\nsed -i 's/a - b/a + b/' calc.py"
    "\n</parameter>\n</function>\n</tool_call>\n<tool_call>\n<function=submit>\n"
    "<parameter=summary>\nfixed\n</parameter>\n</function>\n</tool_call>"
)


def test_patch(repo: Path) -> str:
    (repo / "test_calc.py").write_text(TEST_CALC)
    subprocess.run(["git", "-C", str(repo), "add", "test_calc.py"], check=True)
    patch = subprocess.run(
        ["git", "-C", str(repo), "diff", "--cached"], capture_output=True, text=True, check=True
    ).stdout
    subprocess.run(["git", "-C", str(repo), "reset", "-q", "--hard"], check=True)
    return patch


def instances_of(repo: Path, count: int) -> list[Instance]:
    base = subprocess.run(
        ["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()
    patch = test_patch(repo)
    return [
        Instance(
            instance_id=f"bench-{n}",
            repo=str(repo),
            base_commit=base,
            problem_statement="add() subtracts.",
            FAIL_TO_PASS=["test_calc.py::test_add"],
            test_patch=patch,
            test_cmd="python3 -m pytest -rA -p no:cacheprovider",
        )
        for n in range(count)
    ]


async def measure(instances: list[Instance], image: str, scratch: Path) -> list[InstanceReport]:
    client = docker.from_env(timeout=60)
    with ScriptedModelServer([FIX_AND_SUBMIT] * (2 * len(instances))) as server:
        config = EvalConfig(
            model_name_or_path="bench",
            agent=AgentConfig(max_steps=4),
            sandbox=SandboxConfig(image=image),
            out_dir=scratch / "out",
            workers=1,
        )
        async with ModelClient(ModelConfig(base_url=server.base_url, max_retries=0)) as model:
            evaluation = Evaluation(config, client, model)
            reports = []
            for instance in instances:  # one at a time: overhead, not throughput
                started = time.monotonic()
                (report,) = await evaluation.run([instance])
                report.reason = f"{time.monotonic() - started:.3f}"
                reports.append(report)
    client.close()
    return reports


def row(name: str, values: list[float]) -> str:
    ordered = sorted(values)
    p90 = ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))]
    return f"{name:<32} p50 {statistics.median(values) * 1000:7.0f} ms   p90 {p90 * 1000:7.0f} ms"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=int, default=10)
    parser.add_argument("--image", help="sandbox image (default: build or reuse the recipe's)")
    args = parser.parse_args()
    image = args.image or ensure_image(docker.from_env())
    with tempfile.TemporaryDirectory(prefix="qwen-fix-bench-") as scratch:
        repo = scratch_repo(Path(scratch), {"calc.py": CALC})
        instances = instances_of(repo, args.instances)
        reports = asyncio.run(measure(instances, image, Path(scratch)))
    bad = [r for r in reports if r.verdict != "resolved"]
    if bad:
        print(json.dumps([r.__dict__ for r in bad[:1]], default=str, indent=1)[:3000])
        print(f"{len(bad)} instance(s) were not resolved: the benchmark did not run as meant")
        return 2
    totals = [float(r.reason or 0) for r in reports]
    print(f"eval overhead per instance, {len(reports)} instances, one at a time, instant model")
    print(row("checks (clone, commit, patch, image)", [r.check_seconds for r in reports]))
    print(row("agent side (sandbox, bookkeeping)", [r.agent_seconds for r in reports]))
    print(row("judging (checkout, sandbox, tests)", [r.eval_seconds for r in reports]))
    print(row("total per instance", totals))
    met = statistics.median(totals) <= TARGET_SECONDS
    print(f"target: total p50 ≤ {TARGET_SECONDS:.1f} s: {'met' if met else 'MISSED'}")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
