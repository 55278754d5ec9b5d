"""`qwen-fix eval` end to end on three local instances: resolved, unresolved and erroring."""

from __future__ import annotations

import json
import subprocess
import sys
import time
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
    assert completed.returncode == 1, completed.stderr  # an instance errored
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
    # As SWE-bench's harness runs it: the test files the test patch touches, so a PASS_TO_PASS
    # test elsewhere does not run, and counts as not passing.
    assert unresolved["tests"] == {
        "test_sub.py::test_sub": "FAILED",
        "test_calc.py::CalcTest::test_mul": "MISSING",
    }
    assert unresolved["test_command"] == "python3 -m pytest -rA test_sub.py"
    assert unresolved["log_parser"] in ("built-in:pytest", "swebench:parse_log_pytest")
    assert "1 failed" in unresolved["test_log"]
    assert error["exit_status"] is None and error["steps"] == 0  # no model time spent
    assert error["error"] == f"base_commit {'0' * 40} is not a commit of {repo} ({repo})"
    assert (out / "trajectories" / "calc__resolved-1.jsonl").is_file()
    assert not (out / "scratch").exists()


def test_broken_instances_are_errors_within_seconds_saying_why(
    sandbox_image: str, tmp_path: Path
) -> None:
    """Checked before any model time: each broken instance is an error naming its problem; a
    run whose log holds none of the listed tests is an error too, with the log kept."""
    repo = make_buggy_repo(tmp_path)
    base = subprocess.run(
        ["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()
    common = {"repo": str(repo), "base_commit": base, "problem_statement": "x"}
    cases = [
        common | {"instance_id": "bad-test-patch", "FAIL_TO_PASS": ["t::x"],
                  "test_patch": "diff --git a/calc.py b/calc.py\n--- a/calc.py\n+++ b/calc.py\n"
                  "@@ -1 +1 @@\n-nothing like this\n+x\n"},
        common | {"instance_id": "no-image", "FAIL_TO_PASS": ["t::x"],
                  "image": "qwen-fix-sandbox:no-such-tag"},
        common | {"instance_id": "no-such-tests", "FAIL_TO_PASS": ["test_calc.py::Nope::test_x"]},
    ]  # fmt: skip
    dataset = tmp_path / "instances.jsonl"
    dataset.write_text("".join(json.dumps(case) + "\n" for case in cases))
    predictions = tmp_path / "predictions.jsonl"
    predictions.write_text(
        "".join(json.dumps({"instance_id": c["instance_id"], "model_patch": ""}) + "\n"
                for c in cases)
    )  # fmt: skip
    out = tmp_path / "out"
    command = [sys.executable, "-m", "workers.cli", "eval", str(dataset), "--image", sandbox_image]
    command += ["--predictions", str(predictions), "--out-dir", str(out)]
    started = time.monotonic()
    completed = subprocess.run(
        command, cwd=tmp_path, env=bare_env("http://127.0.0.1:9/v1"), capture_output=True,
        text=True, timeout=300,
    )  # fmt: skip
    assert completed.returncode == 1, completed.stdout + completed.stderr
    assert time.monotonic() - started < 60
    report = json.loads((out / "report.json").read_text())
    assert report["error"] == ["bad-test-patch", "no-image", "no-such-tests"]
    errors = {k: v["error"] for k, v in report["instances"].items()}
    assert errors["bad-test-patch"].startswith(f"test_patch does not apply to base_commit {base}")
    assert "image qwen-fix-sandbox:no-such-tag is not on this engine" in errors["no-image"]
    assert "none of the listed tests appears in the log" in errors["no-such-tests"]
    assert "no name" in report["instances"]["no-such-tests"]["test_log"]  # the log is kept


def test_a_malformed_instances_file_names_the_line(tmp_path: Path) -> None:
    dataset = tmp_path / "instances.jsonl"
    dataset.write_text('{"instance_id": "a"}\n')
    completed = subprocess.run(
        [sys.executable, "-m", "workers.cli", "eval", str(dataset), "--image", "x"],
        cwd=tmp_path, env=bare_env("http://127.0.0.1:9/v1"), capture_output=True, text=True,
    )  # fmt: skip
    assert completed.returncode == 2
    assert "instances.jsonl line 1: `repo` is missing" in completed.stderr
    assert "Traceback" not in completed.stderr
