"""The pure parts of local runs: pytest -rA parsing, verdicts, instances, progress lines."""

from __future__ import annotations

import io

from workers.agent.model import Usage
from workers.agent.tools import TodoItem
from workers.agent.trajectory import StepRecord
from workers.eval import (
    Instance,
    InstanceReport,
    Verdict,
    evaluation_command,
    is_resolved,
    parse_test_statuses,
    summary_line,
)
from workers.progress import ProgressDisplay, step_line, verdict
from workers.solve import task_of

# The tail of a real `python3 -m pytest -rA` run (pytest 7.2), ids with brackets and " - ".
PYTEST_LOG = """\
============================= test session starts ==============================
collected 6 items

t.py .F.sx                                                               [100%]

=========================== short test summary info ============================
PASSED t.py::test_a
PASSED t.py::test_p[1 - 2]
FAILED t.py::test_b - AssertionError: assert 1 == 2
FAILED t.py::test_p[1 - 2 - 3] - ValueError: x - y
ERROR t.py::test_c - fixture 'db' not found
SKIPPED [1] t.py:9: no network
XFAIL t.py::test_x - known bug
==================== 2 failed, 2 passed, 1 skipped, 1 xfailed in 0.05s ====================
"""


def test_pytest_summary_lines_are_parsed_exactly() -> None:
    ids = [
        "t.py::test_a",
        "t.py::test_b",
        "t.py::test_p[1 - 2]",
        "t.py::test_p[1 - 2 - 3]",
        "t.py::test_c",
        "t.py::test_x",
        "t.py::test_never_ran",
        "t.py::test_a[1]",
    ]
    assert parse_test_statuses(PYTEST_LOG, ids) == {
        "t.py::test_a": "PASSED",
        "t.py::test_b": "FAILED",
        "t.py::test_p[1 - 2]": "PASSED",
        "t.py::test_p[1 - 2 - 3]": "FAILED",
        "t.py::test_c": "ERROR",
        "t.py::test_x": "XFAIL",
        "t.py::test_never_ran": "MISSING",
        "t.py::test_a[1]": "MISSING",
    }


def instance(**fields: object) -> Instance:
    base = {"instance_id": "x", "repo": ".", "base_commit": "HEAD", "problem_statement": "p"}
    return Instance.model_validate(base | {"FAIL_TO_PASS": ["t.py::test_a"]} | fields)


def test_resolved_needs_every_fail_to_pass_and_pass_to_pass_test_passing() -> None:
    case = instance(PASS_TO_PASS='["t.py::test_x"]')
    assert case.PASS_TO_PASS == ["t.py::test_x"]
    assert is_resolved(case, {"t.py::test_a": "PASSED", "t.py::test_x": "XFAIL"})
    assert not is_resolved(case, {"t.py::test_a": "PASSED", "t.py::test_x": "FAILED"})
    assert not is_resolved(case, {"t.py::test_a": "MISSING", "t.py::test_x": "PASSED"})


def test_the_test_command_quotes_ids_and_honours_test_cmd() -> None:
    case = instance(FAIL_TO_PASS='["t.py::test_p[a b]", "t.py::test_a"]', test_cmd="pytest -rA -x")
    assert evaluation_command(case) == "pytest -rA -x 't.py::test_p[a b]' t.py::test_a"
    assert evaluation_command(instance()).startswith("python3 -m pytest -rA ")


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
