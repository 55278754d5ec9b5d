"""`qwen-fix eval` against SWE-bench's own harness on real fixes, one pytest-based repository and
one unittest-based, built into instances the way SWE-bench builds them.

Each pair of releases of a small real project (fetched by tests/fixtures/fetch.sh) is one fix:
the base is the earlier release, the test patch is what the fix changed in the tests, the gold
patch is what it changed in the code. FAIL_TO_PASS and PASS_TO_PASS come from running the tests
at the base and at the gold patch (both with the test patch) and reading the logs with the
`swebench` package's own parser. Then `qwen-fix eval --predictions` must find the gold patch
resolved and an empty patch unresolved, and every status it reports must be what the official
parser reads in the same log, which the built-in parsers (used without the package) must read
too.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
import pytest

from sandbox.config import SandboxConfig
from sandbox.docker import DockerSandbox
from tests.solve.test_solve_cli import bare_env
from workers.eval import directives_from
from workers.git import git
from workers.test_logs import BUILT_IN, family_of

pytestmark = pytest.mark.docker

PYPI = Path(__file__).resolve().parents[1] / "fixtures" / "pypi"
PROJECT_ROOT = Path(__file__).resolve().parents[2]
IGNORED = ("PKG-INFO", ".egg-info", "setup.cfg", "setup.py", ".rst", "MANIFEST.in", ".toml")


@dataclass(frozen=True)
class Fix:
    name: str
    before: str
    after: str
    test_cmd: str
    log_parser: str

    def is_test(self, path: str) -> bool:
        return path.startswith("tests/") or Path(path).name.startswith("test_")


FIXES = [
    Fix("parse", "parse-1.20.1", "parse-1.20.2",
        "python3 -m pytest -rA -p no:cacheprovider", "parse_log_pytest"),
    Fix("schedule", "schedule-1.2.1", "schedule-1.2.2",
        "python3 -m unittest -v", "parse_log_django"),
]  # fmt: skip


def run(*args: str, cwd: Path) -> str:
    done = subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args],
        cwd=cwd, check=True, capture_output=True, text=True,
    )  # fmt: skip
    return done.stdout


def release_files(root: Path) -> dict[str, Path]:
    return {
        str(p.relative_to(root)): p
        for p in root.rglob("*")
        if p.is_file() and not any(part in str(p.relative_to(root)) for part in IGNORED)
    }


def build_repository(fix: Fix, root: Path) -> tuple[Path, str, str, str]:
    """A repository at the earlier release; (path, base commit, test patch, gold patch)."""
    repo = root / fix.name
    before, after = release_files(PYPI / fix.before), release_files(PYPI / fix.after)
    for path, source in before.items():
        (repo / path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(source, repo / path)
    run("init", "-q", "-b", "main", cwd=root / fix.name)
    run("add", "-A", cwd=repo)
    run("commit", "-q", "-m", f"{fix.before}", cwd=repo)
    base = run("rev-parse", "HEAD", cwd=repo).strip()
    patches = {}
    for kind in ("test", "gold"):
        for path, source in after.items():
            if fix.is_test(path) == (kind == "test") and path.endswith(".py"):
                (repo / path).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(source, repo / path)
        run("add", "-A", cwd=repo)
        patches[kind] = run("diff", "--cached", "--binary", cwd=repo)
        run("reset", "-q", "--hard", base, cwd=repo)
    assert patches["test"] and patches["gold"]
    return repo, base, patches["test"], patches["gold"]


def official(log_parser: str, log: str) -> dict[str, str]:
    from swebench.harness.log_parsers import PARSER_REGISTRY

    return dict(PARSER_REGISTRY[log_parser](log, None))


async def statuses_at(
    client: docker.DockerClient, image: str, repo: Path, patches: list[str], fix: Fix,
    scratch: Path,
) -> dict[str, str]:  # fmt: skip
    """The official parser's reading of the test run at the base plus `patches`."""
    tree = scratch / "tree"
    shutil.rmtree(tree, ignore_errors=True)
    run("clone", "-q", str(repo), str(tree), cwd=scratch)
    for patch in patches:
        await git("apply", "-", cwd=tree, stdin=patch.encode())
    box = await DockerSandbox.start(
        client, SandboxConfig(image=image), tree, labels={"qwen-fix.test": "parity"}
    )
    # As SWE-bench runs them: the test files the test patch touches.
    command = " ".join([fix.test_cmd, *directives_from(patches[0], fix.test_cmd)])
    try:
        result = await box.run(command, timeout=300)
    finally:
        await box.close()
    return official(fix.log_parser, result.output)


async def build_instance(
    fix: Fix, client: docker.DockerClient, image: str, tmp_path: Path
) -> tuple[dict[str, Any], str]:
    """The instance, as SWE-bench makes one from a fix; and its gold patch."""
    repo, base, test_patch, gold = build_repository(fix, tmp_path)
    before = await statuses_at(client, image, repo, [test_patch], fix, tmp_path)
    after = await statuses_at(client, image, repo, [test_patch, gold], fix, tmp_path)
    fail_to_pass = [t for t, s in after.items() if s == "PASSED" and before.get(t) != "PASSED"]
    pass_to_pass = [t for t, s in after.items() if s == "PASSED" and before.get(t) == "PASSED"]
    assert fail_to_pass and pass_to_pass, (before, after)
    instance = {
        "instance_id": f"{fix.name}__{fix.after}",
        "repo": str(repo),
        "base_commit": base,
        "problem_statement": f"The fix released in {fix.after}.",
        "test_patch": test_patch,
        "FAIL_TO_PASS": json.dumps(fail_to_pass),
        "PASS_TO_PASS": json.dumps(pass_to_pass),
        "test_cmd": fix.test_cmd,
        "log_parser": fix.log_parser,
        "version": fix.after.rsplit("-", 1)[1],
    }
    return instance, gold


def judge(
    instances: list[dict[str, Any]], patches: dict[str, str], image: str, out: Path
) -> dict[str, Any]:
    out.mkdir(parents=True)
    (out / "instances.jsonl").write_text("".join(json.dumps(i) + "\n" for i in instances))
    predictions = [
        {"instance_id": k, "model_name_or_path": "gold", "model_patch": v}
        for k, v in patches.items()
    ]
    (out / "predictions.jsonl").write_text("".join(json.dumps(p) + "\n" for p in predictions))
    command = [sys.executable, "-m", "workers.cli", "eval", str(out / "instances.jsonl")]
    command += ["--predictions", str(out / "predictions.jsonl"), "--image", image]
    command += ["--out-dir", str(out / "report")]
    done = subprocess.run(
        command, cwd=out, env=bare_env("http://127.0.0.1:9/v1"), capture_output=True, text=True,
        timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    report: dict[str, Any] = json.loads((out / "report" / "report.json").read_text())
    return report


async def test_gold_is_resolved_empty_is_not_and_the_logs_read_as_swebench_reads_them(
    docker_client: docker.DockerClient, sandbox_image: str, tmp_path: Path
) -> None:
    built = [await build_instance(fix, docker_client, sandbox_image, tmp_path) for fix in FIXES]
    instances = [instance for instance, _ in built]
    gold = judge(
        instances, {i["instance_id"]: g for i, g in built}, sandbox_image, tmp_path / "gold"
    )
    empty = judge(instances, {i["instance_id"]: "" for i in instances}, sandbox_image,
                  tmp_path / "empty")  # fmt: skip
    ids = [i["instance_id"] for i in instances]
    assert gold["resolved"] == ids and empty["unresolved"] == ids
    for report in (gold, empty):
        for instance, fix in zip(instances, FIXES, strict=True):
            detail = report["instances"][instance["instance_id"]]
            log = detail["test_log"]
            assert detail["log_parser"] == f"swebench:{fix.log_parser}"
            # What qwen-fix reported is what SWE-bench's parser reads in the same log...
            read = official(fix.log_parser, log)
            assert detail["tests"] == {t: read.get(t, "MISSING") for t in detail["tests"]}
            # ...and what the built-in parser, used without the package, reads too.
            built_in = BUILT_IN[family_of(fix.test_cmd, fix.log_parser)](log)
            assert {t: built_in.get(t, "MISSING") for t in detail["tests"]} == detail["tests"]
    f2p = json.loads(instances[1]["FAIL_TO_PASS"])
    assert empty["instances"][ids[1]]["tests"][f2p[0]] in ("FAILED", "ERROR")
