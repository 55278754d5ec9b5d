"""`qwen-fix eval` end to end on three local instances: resolved, unresolved and erroring."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.agent.repo import git, make_buggy_repo
from tests.agent.xml import tool_call
from tests.model_server import ScriptedModelServer
from tests.solve.test_solve_cli import bare_env

pytestmark = pytest.mark.docker

StartServer = Callable[..., ScriptedModelServer]
# One self-contained turn (fix, then submit) that is right whichever run receives it, so the
# two runs sharing the scripted server may interleave freely: each run takes two such turns.
FIX_AND_SUBMIT = "\n".join(
    [
        "Fix add() and submit.",
        tool_call("bash", command="sed -i 's/a - b/a + b/' calc.py"),
        tool_call("submit", summary="add() adds."),
    ]
)
TEST_SUB = "import calc\n\n\ndef test_sub():\n    assert calc.sub(5, 3) == 2\n"


def patch_adding(repo: Path, name: str, text: str) -> str:
    """A test_patch as SWE-bench ships it: a diff that adds a test file to the base commit."""
    (repo / name).write_text(text)
    git(repo, "add", name)
    patch = subprocess.run(
        ["git", "-C", str(repo), "diff", "--cached"], capture_output=True, text=True, check=True
    ).stdout
    git(repo, "reset", "-q", "--hard")
    return patch


def instances(repo: Path, base: str) -> list[dict[str, object]]:
    common: dict[str, object] = {
        "repo": str(repo),
        "base_commit": base,
        "problem_statement": "add() is wrong\n\n.",
    }
    return [
        common
        | {
            "instance_id": "calc__resolved-1",
            "FAIL_TO_PASS": ["test_calc.py::CalcTest::test_add"],
            "PASS_TO_PASS": ["test_calc.py::CalcTest::test_mul"],
        },
        common
        | {
            "instance_id": "calc__unresolved-2",
            # As in the SWE-bench dataset: lists encoded as JSON strings.
            "FAIL_TO_PASS": json.dumps(["test_sub.py::test_sub"]),
            "PASS_TO_PASS": json.dumps(["test_calc.py::CalcTest::test_mul"]),
            "test_patch": patch_adding(repo, "test_sub.py", TEST_SUB),
            "created_at": "2024-01-01",
        },
        common
        | {
            "instance_id": "calc__error-3",
            "base_commit": "0" * 40,
            "FAIL_TO_PASS": ["test_calc.py::CalcTest::test_add"],
            "PASS_TO_PASS": [],
        },
    ]


def test_eval_resolves_one_fails_one_and_reports_an_error(
    scripted_server: StartServer, sandbox_image: str, tmp_path: Path
) -> None:
    repo = make_buggy_repo(tmp_path)
    base = subprocess.run(
        ["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()
    dataset = tmp_path / "instances.jsonl"
    cases = instances(repo, base)
    dataset.write_text("".join(json.dumps(case) + "\n" for case in cases))
    server = scripted_server([FIX_AND_SUBMIT] * 4)
    out = tmp_path / "out"
    command = [sys.executable, "-m", "workers.cli", "eval", str(dataset), "--workers", "3"]
    command += ["--out-dir", str(out), "--image", sandbox_image, "--model", "qwen-test"]
    completed = subprocess.run(
        command, cwd=tmp_path, env=bare_env(server.base_url), capture_output=True, text=True
    )
    assert completed.returncode == 0, completed.stderr
    assert "resolved 1/3 (33.3%) · unresolved 1 · error 1" in completed.stdout
    assert server.failures == [] and server.remaining == 0

    predictions = [
        json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()
    ]
    assert [p["instance_id"] for p in predictions] == [c["instance_id"] for c in cases]
    assert {p["model_name_or_path"] for p in predictions} == {"qwen-test"}
    assert "+    return a + b" in predictions[0]["model_patch"] == predictions[1]["model_patch"]
    assert predictions[2]["model_patch"] == ""

    report = json.loads((out / "report.json").read_text())
    assert (report["resolved"], report["unresolved"], report["error"]) == (
        ["calc__resolved-1"],
        ["calc__unresolved-2"],
        ["calc__error-3"],
    )
    resolved, unresolved, error = (report["instances"][i["instance_id"]] for i in predictions)
    assert resolved["tests"] == {
        "test_calc.py::CalcTest::test_add": "PASSED",
        "test_calc.py::CalcTest::test_mul": "PASSED",
    }
    assert resolved["exit_status"] == "submitted" and resolved["steps"] == 2
    assert resolved["prompt_tokens"] > 0 and resolved["agent_seconds"] > 0
    assert resolved["patch_applied"] is True and resolved["eval_seconds"] > 0
    assert unresolved["tests"] == {
        "test_sub.py::test_sub": "FAILED",
        "test_calc.py::CalcTest::test_mul": "PASSED",
    }
    assert error["exit_status"] is None and "GitError" in error["error"]
    assert (out / "trajectories" / "calc__resolved-1.jsonl").is_file()
    assert not (out / "scratch").exists()
