"""What people and the agent are told about the sandbox: the tracking comment names the image and
the test command with why, and an agent with no test command learns that plainly."""

from __future__ import annotations

from workers.agent.prompts import task_message
from workers.agent.task import Task
from workers.test_command import candidate_commands, choose
from workers.tracking import MARKER, Progress, render_tracking

STARTED = 1_700_000_000.0
NO_TOOLS = choose(
    candidate_commands(["Makefile"], lambda path: "test:\n\tpython -m pytest\n"), present=set()
)


def test_the_tracking_comment_names_the_image_and_the_test_command_under_the_headline() -> None:
    progress = Progress("Working on a fix", state="working", started=STARTED)
    progress.environment = [
        "sandbox: `node:20` — from .devcontainer/devcontainer.json",
        "tests: `npm test` — package.json has a test script",
    ]
    assert render_tracking(progress, now=STARTED + 4) == "\n".join(
        [
            MARKER,
            "🛠️ **Working on a fix**",
            "",
            "sandbox: `node:20` — from .devcontainer/devcontainer.json",
            "tests: `npm test` — package.json has a test script",
            "",
            "<sub>4 s · 0 steps · 0 tokens</sub>",
        ]
    )


def test_an_agent_without_a_test_command_is_told_why_and_how_one_is_set() -> None:
    task = Task("t", "b", no_test_reason=NO_TOOLS.agent_note())
    message = task_message(task)
    assert (
        "No test command is known for this repository: the sandbox image lacks what the "
        "detected ones need (`make test` needs make). A maintainer can set `test:` in "
        ".github/qwen-fix.yml. There is no `run_tests` tool"
    ) in message
    assert "run_tests` (tool" not in message


def test_a_task_with_a_test_command_names_it_and_nothing_else() -> None:
    message = task_message(Task("t", "b", test_command="make test"))
    assert "The project's tests run with: `make test` (tool `run_tests`)." in message
    assert "No test command" not in message


def test_plans_and_answers_are_not_told_about_tests() -> None:
    for mode in ("plan", "ask"):
        assert "No test command" not in task_message(Task("t", "b", mode=mode))
