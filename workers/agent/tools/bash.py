"""The `bash` tool: run a command in the sandbox's persistent shell."""

from __future__ import annotations

from typing import Any

from workers.agent.tools.context import ToolContext
from workers.agent.tools.errors import ToolError

MAX_TIMEOUT = 1800.0

SCHEMA: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "bash",
        "description": (
            "Run a bash command in the repository's sandbox. The shell is persistent: the working "
            "directory and exported variables carry over between calls. There is no network and "
            "no interactive input; pass flags such as -y. Long output is cut in the middle."
        ),
        "parameters": {
            "type": "object",
            "properties": {
                "command": {"type": "string", "description": "The command to run."},
                "timeout": {
                    "type": "integer",
                    "description": "Seconds before the command is killed (default 120).",
                },
            },
            "required": ["command"],
        },
    },
}


async def run(ctx: ToolContext, args: dict[str, Any]) -> str:
    command = str(args["command"]).strip()
    if not command:
        raise ToolError("`command` is empty.")
    timeout = min(float(args.get("timeout") or ctx.command_timeout), MAX_TIMEOUT)
    result = await ctx.sandbox.run(command, timeout=timeout)
    if result.timed_out:
        return f"{result.output}\n[command killed after {timeout:.0f} s timeout]"
    return f"{result.output}\n[exit code {result.exit_code}]"
