"""The pure parts of local runs: the eval summary, task text, progress lines (the rest of eval's
pure parts: tests/solve/test_eval_parts.py)."""

from __future__ import annotations

import io

from workers.agent.model import Usage
from workers.agent.tools import TodoItem
from workers.agent.trajectory import StepRecord
from workers.eval import InstanceReport, Verdict, summary_line
from workers.progress import ProgressDisplay, step_line, verdict
from workers.solve import task_of


def test_summary_line() -> None:
    verdicts: list[Verdict] = ["resolved", "error", "unresolved"]
    reports = [InstanceReport(str(n), verdict=v) for n, v in enumerate(verdicts)]
    assert summary_line(reports) == "resolved 1/3 (33.3%) · unresolved 1 · error 1"
    assert summary_line([]) == "resolved 0/0 (0.0%) · unresolved 0 · error 0"


def test_issue_text_becomes_title_and_body() -> None:
    task = task_of("  Crash on empty input\n\nSteps:\n1. run it\n", "make test", "", "plan")
    assert (task.title, task.body, task.test_command, task.mode) == (
        "Crash on empty input",
        "Steps:\n1. run it",
        "make test",
        "plan",
    )


def test_a_step_line_names_the_tool_its_verdict_and_the_tokens() -> None:
    record = StepRecord(
        step=3,
        tool_calls=[
            {"name": "bash", "arguments": {"command": "ls   -la\n/workspace"}},
            {"name": "run_tests", "arguments": {}},
        ],
        observations=["a\nb\n[exit code 2]", "$ make test\n...\n[tests FAILED, exit code 1]"],
        usage=Usage(calls=1, prompt_tokens=12_345, cached_tokens=12_000, completion_tokens=80),
        model_seconds=1.25,
        tool_seconds=0.5,
    )
    assert step_line(record) == (
        "step   3 · bash: ls -la /workspace → exit 2; run_tests → tests FAILED · "
        "12.3k+80 tok (12.0k cached) · 1.2s model, 0.5s tools"
    )
    assert verdict("Error: No replacement: `old_str` does not occur") == (
        "Error: No replacement: `old_str` does not occur"
    )


async def test_the_display_writes_plain_lines_off_a_terminal() -> None:
    stream = io.StringIO()
    display = ProgressDisplay(stream)
    await display.plan_changed([TodoItem("Reproduce", "done"), TodoItem("Fix")])
    await display.step_finished(StepRecord(step=1, note="format error: no tool call"))
    assert stream.getvalue().splitlines() == [
        "plan:",
        "  [x] Reproduce",
        "  [ ] Fix",
        "step   1 · format error: no tool call · 0+0 tok · 0.0s model, 0.0s tools",
    ]
