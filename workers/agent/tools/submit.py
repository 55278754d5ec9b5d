"""The `submit` tool: the first call shows the final diff for one review, the second accepts it."""

from __future__ import annotations

from typing import Any

from workers.agent.exits import Submitted
from workers.agent.tools.context import ToolContext
from workers.agent.tools.errors import ToolError
from workers.agent.tools.observation import cut_middle

SCHEMA: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "submit",
        "description": (
            "Finish the task. The first call shows your final diff for review; call `submit` "
            "again to accept it. `summary` explains the change for the pull request."
        ),
        "parameters": {
            "type": "object",
            "properties": {
                "summary": {
                    "type": "string",
                    "description": "What you changed and why, and how you tested it.",
                }
            },
            "required": ["summary"],
        },
    },
}

REVIEW = (
    "Review this diff once before it becomes a pull request: is every change needed, are there "
    "debugging leftovers or stray files, do the tests pass? Fix anything wrong, then call "
    "`submit` again to accept."
)


async def run(ctx: ToolContext, args: dict[str, Any]) -> str:
    summary = str(args["summary"]).strip()
    if not summary:
        raise ToolError("`summary` is empty; say what you changed and why.")
    if ctx.submit_requested:
        raise Submitted(summary)
    ctx.submit_requested = True
    diff = await ctx.sandbox.diff()
    if not diff.strip():
        if ctx.read_only:
            return "No changes, as expected of a read-only task. Call `submit` again to deliver."
        return "Your diff is EMPTY: nothing has changed. Make the fix, or call `submit` again."
    return f"{REVIEW}\n\n{cut_middle(diff, ctx.observation_limit)}"
