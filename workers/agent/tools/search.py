"""The `search` tool: a bounded regex search over the repository (ripgrep, else grep)."""

from __future__ import annotations

import shlex
from typing import Any

from workers.agent.tools.context import ToolContext
from workers.agent.tools.errors import ToolError

MAX_MATCHES = 200

SCHEMA: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "search",
        "description": (
            f"Search file contents for a regular expression; prints path:line:text for at most "
            f"{MAX_MATCHES} matches. Skips .git."
        ),
        "parameters": {
            "type": "object",
            "properties": {
                "pattern": {"type": "string", "description": "Extended regular expression."},
                "path": {
                    "type": "string",
                    "description": "File or directory to search (default: the repository).",
                },
                "glob": {"type": "string", "description": "Only files matching this glob."},
            },
            "required": ["pattern"],
        },
    },
}


def search_command(pattern: str, path: str, glob: str | None) -> str:
    quoted = shlex.quote(pattern)
    rg_glob = f" -g {shlex.quote(glob)}" if glob else ""
    grep_glob = f" --include={shlex.quote(glob)}" if glob else ""
    rg = f"rg -n --no-heading --color never{rg_glob} -e {quoted} -- {shlex.quote(path)}"
    grep = f"grep -rnE -I --exclude-dir=.git{grep_glob} -e {quoted} -- {shlex.quote(path)}"
    both = f"if command -v rg >/dev/null 2>&1; then {rg}; else {grep}; fi"
    return f"({both}) 2>&1 | head -n {MAX_MATCHES + 1}"


async def run(ctx: ToolContext, args: dict[str, Any]) -> str:
    pattern = str(args["pattern"])
    if not pattern:
        raise ToolError("`pattern` is empty.")
    path = str(args.get("path") or ".")
    command = search_command(pattern, path, args.get("glob"))
    result = await ctx.sandbox.run(command, timeout=60, cwd=ctx.sandbox.workspace)
    lines = result.output.splitlines()
    if not lines:
        return f"No matches for {pattern!r} in {path}."
    if len(lines) > MAX_MATCHES:
        shown = "\n".join(lines[:MAX_MATCHES])
        return f"{shown}\n[more than {MAX_MATCHES} matches; narrow the pattern or the path]"
    return "\n".join(lines)
