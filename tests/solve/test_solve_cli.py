"""`qwen-fix solve` end to end: a subprocess, a real sandbox, the scripted model server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.agent.repo import TEST_COMMAND, git, make_buggy_repo
from tests.agent.xml import turn
from tests.model_server import Reply, ScriptedModelServer

pytestmark = pytest.mark.docker

StartServer = Callable[..., ScriptedModelServer]
PROJECT_ROOT = Path(__file__).resolve().parents[2]
FIX = turn(
    "Fix it.",
    "str_replace_editor",
    command="str_replace",
    path="calc.py",
    old_str="    return a - b",
    new_str="    return a + b",
)
SUBMIT = turn("Done.", "submit", summary="add() now adds.")


def qwen_fix(*args: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "workers.cli", *args]
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


def bare_env(model_url: str) -> dict[str, str]:
    """No GitHub settings at all: a local run must not need them."""
    github = ("APP_ID", "PRIVATE_KEY", "PRIVATE_KEY_PATH", "WEBHOOK_SECRET")
    env = {k: v for k, v in os.environ.items() if k not in github and not k.startswith("MODEL_")}
    return env | {"MODEL_BASE_URL": model_url, "PYTHONPATH": str(PROJECT_ROOT)}


def status(repo: Path) -> str:
    result = subprocess.run(["git", "-C", str(repo), "status", "--porcelain"], capture_output=True)
    return result.stdout.decode()


def test_solve_prints_a_patch_for_the_working_tree_and_leaves_the_repo_alone(
    scripted_server: StartServer, sandbox_image: str, tmp_path: Path
) -> None:
    repo = make_buggy_repo(tmp_path)
    # Uncommitted work of the user's: the agent must see it, and the patch must apply on top.
    (repo / "calc.py").write_text(
        (repo / "calc.py").read_text() + "\n\ndef neg(a):\n    return -a\n"
    )
    (repo / "NOTES.txt").write_text("untracked note\n")
    before = status(repo)
    check = turn("Check.", "bash", command="grep -c 'def neg' calc.py && cat NOTES.txt")
    script = [
        check,
        Reply(FIX, expect_in_last_message="untracked note"),
        Reply(turn("Test.", "run_tests"), expect_in_last_message="6\t    return a + b"),
        Reply(SUBMIT, expect_in_last_message="tests PASSED"),
        SUBMIT,
    ]
    server = scripted_server(script)
    issue = tmp_path / "issue.md"
    issue.write_text("add() returns the wrong result\n\n`add(2, 3)` gives -1.\n")
    trajectory = tmp_path / "run.jsonl"
    args = ["solve", str(repo), "--issue-file", str(issue), "--image", sandbox_image]
    args += ["--test", TEST_COMMAND, "--trajectory", str(trajectory)]
    completed = qwen_fix(*args, cwd=tmp_path, env=bare_env(server.base_url))
    assert server.failures == []
    assert completed.returncode == 0, completed.stderr
    patch = completed.stdout
    assert patch.startswith("diff --git a/calc.py b/calc.py")
    assert "-    return a - b\n+    return a + b" in patch and "NOTES" not in patch
    assert "step   1 · bash: grep -c" in completed.stderr and "exit 0" in completed.stderr
    assert "submitted after 5 steps" in completed.stderr
    assert "Ran 2 tests" in completed.stderr and "OK" in completed.stderr  # the test log
    assert status(repo) == before and trajectory.read_text().count('"type": "step"') == 5
    # The patch applies to the user's working tree, uncommitted changes included.
    git(repo, "apply", "--check", str(write(tmp_path / "fix.patch", patch)))


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_solve_without_a_submission_fails_with_the_reason_and_apply_leaves_the_repo_alone(
    scripted_server: StartServer, sandbox_image: str, tmp_path: Path
) -> None:
    repo = make_buggy_repo(tmp_path)
    server = scripted_server([FIX])
    patch_out = tmp_path / "out.patch"
    args = ["solve", str(repo), "--issue", "add() is wrong", "--image", sandbox_image]
    args += ["--max-steps", "1", "--patch-out", str(patch_out), "--apply"]
    completed = qwen_fix(*args, cwd=tmp_path, env=bare_env(server.base_url))
    assert completed.returncode == 1
    assert "step_limit after 1 steps" in completed.stderr and "limit of 1 steps" in completed.stderr
    assert completed.stdout == "" and "+    return a + b" in patch_out.read_text()
    assert status(repo) == ""  # --apply only applies a submitted patch


def test_solve_honours_the_agent_settings_of_its_environment(
    scripted_server: StartServer, sandbox_image: str, tmp_path: Path
) -> None:
    """AGENT_MAX_STEPS, AGENT_CONTEXT_WINDOW and MODEL_MAX_TOKENS mean the same as for the
    worker; --max-steps overrides the first."""
    repo = make_buggy_repo(tmp_path)
    server = scripted_server([FIX, SUBMIT, SUBMIT])
    trajectory = tmp_path / "run.jsonl"
    args = ["solve", str(repo), "--issue", "add() is wrong", "--image", sandbox_image]
    env = bare_env(server.base_url) | {
        "AGENT_MAX_STEPS": "1", "AGENT_CONTEXT_WINDOW": "50000", "MODEL_MAX_TOKENS": "3000",
    }  # fmt: skip
    completed = qwen_fix(*args, "--trajectory", str(trajectory), cwd=tmp_path, env=env)
    assert completed.returncode == 1
    assert "step_limit after 1 steps" in completed.stderr
    start = json.loads(trajectory.read_text().splitlines()[0])
    assert (start["window"], start["output_reserve"]) == (50_000, 3_000)
    assert server.requests[0]["max_tokens"] == 3_000


def test_solve_apply_writes_the_submitted_patch_to_the_repo(
    scripted_server: StartServer, sandbox_image: str, tmp_path: Path
) -> None:
    repo = make_buggy_repo(tmp_path)
    server = scripted_server([FIX, SUBMIT, SUBMIT])
    args = ["solve", str(repo), "--issue", "add() is wrong", "--image", sandbox_image, "--apply"]
    completed = qwen_fix(*args, "--model-url", server.base_url, cwd=tmp_path, env=bare_env(""))
    assert completed.returncode == 0, completed.stderr
    assert status(repo) == " M calc.py\n" and "return a + b" in (repo / "calc.py").read_text()


def test_solve_outside_a_repository_is_a_usage_error(tmp_path: Path) -> None:
    completed = qwen_fix(
        "solve", str(tmp_path), "--issue", "x", "--image", "none", cwd=tmp_path, env=bare_env("")
    )
    assert completed.returncode == 2 and "is not the root of a git repository" in completed.stderr
