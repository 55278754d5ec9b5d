"""The live progress display of a local run: one line per agent step, on a terminal or a log."""

from __future__ import annotations

import contextlib
import json
import re
from typing import Any, TextIO

from workers.agent.tools import TodoItem
from workers.agent.trajectory import StepRecord

ARGUMENT_WIDTH = 60
VERDICT_WIDTH = 50
EXIT_CODE = re.compile(r"\[exit code (-?\d+)\]\s*$")
TEST_VERDICT = re.compile(r"\[tests (PASSED|FAILED|TIMED OUT[^,\]]*)")
MARKS = {"pending": " ", "in_progress": "~", "done": "x"}
DIM, BOLD, RED, GREEN, RESET = "\x1b[2m", "\x1b[1m", "\x1b[31m", "\x1b[32m", "\x1b[0m"


def shorten(text: str, width: int) -> str:
    """`text` on one line, cut to `width` characters with an ellipsis."""
    line = " ".join(text.split())
    return line if len(line) <= width else line[: width - 1] + "…"


def call_summary(call: dict[str, Any]) -> str:
    """`bash: ls -la`, `str_replace_editor: str_replace calc.py`: the tool and its gist."""
    name, arguments = call.get("name", "?"), call.get("arguments") or {}
    if name == "bash":
        gist = str(arguments.get("command", ""))
    elif name == "str_replace_editor":
        gist = f"{arguments.get('command', '')} {arguments.get('path', '')}"
    elif name == "search":
        gist = str(arguments.get("pattern", ""))
    elif name in ("todo", "run_tests", "submit"):
        gist = str(arguments.get("command") or arguments.get("summary") or "")
    else:
        gist = json.dumps(arguments, ensure_ascii=False)
    return f"{name}: {shorten(gist, ARGUMENT_WIDTH)}" if gist.strip() else name


def verdict(observation: str) -> str:
    """What an observation amounts to: an exit code, a test verdict, an error or its first line."""
    tests = TEST_VERDICT.search(observation)
    if tests:
        return f"tests {tests.group(1)}"
    code = EXIT_CODE.search(observation)
    if code:
        return f"exit {code.group(1)}"
    lines = [line for line in observation.strip().splitlines() if line.strip()]
    return shorten(lines[0], VERDICT_WIDTH) if lines else "(no output)"


def tokens(count: int) -> str:
    return f"{count / 1000:.1f}k" if count >= 1000 else str(count)


def step_line(record: StepRecord) -> str:
    """One plain line for one finished step."""
    usage = record.usage
    cost = f"{tokens(usage.prompt_tokens)}+{tokens(usage.completion_tokens)} tok"
    if usage.cached_tokens:
        cost += f" ({tokens(usage.cached_tokens)} cached)"
    results = [verdict(text) for text in record.observations]
    # A call without an observation is one that ended the run (the accepted `submit`).
    actions = "; ".join(
        f"{call_summary(call)} → {results[n]}" if n < len(results) else call_summary(call)
        for n, call in enumerate(record.tool_calls)
    )
    line = f"step {record.step:>3} · {actions or record.note or 'no tool call'} · {cost}"
    if record.note and actions:
        line += f" · {record.note}"
    return line + f" · {record.model_seconds:.1f}s model, {record.tool_seconds:.1f}s tools"


def plan_lines(plan: list[TodoItem]) -> list[str]:
    return [f"  [{MARKS[item.status]}] {item.text}" for item in plan]


class ProgressDisplay:
    """An AgentObserver that writes each step to `stream`; colours only on a terminal."""

    def __init__(self, stream: TextIO, *, color: bool | None = None) -> None:
        self.stream = stream
        self.color = stream.isatty() if color is None else color

    async def plan_changed(self, plan: list[TodoItem]) -> None:
        self.write("plan:", BOLD)
        for line in plan_lines(plan):
            self.write(line, DIM)

    async def step_finished(self, record: StepRecord) -> None:
        failed = record.note is not None or any(
            text.startswith("Error:") for text in record.observations
        )
        self.write(step_line(record), RED if failed else "")

    def message(self, text: str, *, ok: bool | None = None) -> None:
        """A line outside the steps (start, end); green or red on a terminal when `ok` is set."""
        self.write(text, "" if ok is None else GREEN if ok else RED)

    def write(self, text: str, style: str = "") -> None:
        if self.color and style:
            text = f"{style}{text}{RESET}"
        # A closed stderr must not end the run.
        with contextlib.suppress(OSError, ValueError):
            print(text, file=self.stream, flush=True)
