"""The `run_tests` tool: run the task's test command and remember the outcome."""

from __future__ import annotations

from typing import Any

from workers.agent.tools.context import TestRun, ToolContext
from workers.agent.tools.errors import ToolError

SCHEMA: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "run_tests",
        "description": (
            "Run the repository's configured test command from the repository root and report "
            "the exit code and output. Run it before submitting."
        ),
        "parameters": {"type": "object", "properties": {}, "required": []},
    },
}


async def run(ctx: ToolContext, args: dict[str, Any]) -> str:
    if ctx.test_command is None:
        raise ToolError("No test command is configured; run the tests you need with `bash`.")
    cwd = ctx.sandbox.workspace
    result = await ctx.sandbox.run(ctx.test_command, timeout=ctx.test_timeout, cwd=cwd)
    run = TestRun(
        ctx.test_command, result.exit_code, result.output, result.duration, result.timed_out
    )
    ctx.last_test_run = run
    verdict = "PASSED" if run.passed else "FAILED"
    if run.timed_out:
        verdict = f"TIMED OUT after {ctx.test_timeout:.0f} s"
    return f"$ {run.command}\n{run.output}\n[tests {verdict}, exit code {run.exit_code}]"
