"""The `str_replace_editor` tool: view, create and edit files, with undo and a syntax check."""

from __future__ import annotations

import posixpath
import shlex
from typing import Any

from workers.agent.tools.context import ToolContext
from workers.agent.tools.errors import ToolError
from workers.agent.tools.observation import numbered

SNIPPET_CONTEXT = 4
EDIT_COMMANDS = ("create", "str_replace", "insert", "undo_edit")
# compile() is what py_compile checks, without leaving a .pyc behind in the diff.
SYNTAX_CHECK = (
    "python3 -c \"import sys; compile(open(sys.argv[1], 'rb').read(), sys.argv[2], 'exec')\""
)

SCHEMA: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "str_replace_editor",
        "description": (
            "View, create and edit files. `view` prints a file with line numbers (optionally "
            "`view_range` [start, end], end -1 for the end of file) or lists a directory two "
            "levels deep. `create` writes a new file. `str_replace` replaces `old_str`, which "
            "must occur exactly once, with `new_str`. `insert` adds `new_str` after line "
            "`insert_line` (0 for the top). `undo_edit` reverts the last edit of `path`."
        ),
        "parameters": {
            "type": "object",
            "properties": {
                "command": {"type": "string", "enum": ["view", *EDIT_COMMANDS]},
                "path": {"type": "string", "description": "File or directory path."},
                "file_text": {"type": "string", "description": "For `create`: the content."},
                "old_str": {"type": "string", "description": "For `str_replace`."},
                "new_str": {"type": "string", "description": "For `str_replace` and `insert`."},
                "insert_line": {"type": "integer", "description": "For `insert`."},
                "view_range": {
                    "type": "array",
                    "items": {"type": "integer"},
                    "description": "For `view` of a file: [start, end].",
                },
            },
            "required": ["command", "path"],
        },
    },
}


def absolute(ctx: ToolContext, path: str) -> str:
    return posixpath.normpath(posixpath.join(ctx.sandbox.workspace, path))


async def kind_of(ctx: ToolContext, path: str) -> str:
    quoted = shlex.quote(path)
    probe = f"if [ -d {quoted} ]; then echo dir; elif [ -f {quoted} ]; then echo file; fi"
    return (await ctx.sandbox.run(probe, timeout=30)).output.strip()


async def read_text(ctx: ToolContext, path: str) -> str:
    try:
        return (await ctx.sandbox.read_file(path)).decode()
    except UnicodeDecodeError as exc:
        raise ToolError(f"{path} is not UTF-8 text; use `bash` to inspect it.") from exc
    except OSError as exc:
        # A file the sandbox cannot read (permissions, a vanished path) is the model's to
        # know about, not a broken sandbox.
        raise ToolError(f"{path} cannot be read: {exc}") from exc


async def write_text(ctx: ToolContext, path: str, text: str, previous: bytes | None) -> None:
    await ctx.sandbox.run(f"mkdir -p {shlex.quote(posixpath.dirname(path))}", timeout=30)
    try:
        await ctx.sandbox.write_file(path, text.encode())
    except OSError as exc:
        # Outside the workspace the root filesystem is read-only: say so, and go on.
        raise ToolError(f"{path} cannot be written: {exc}") from exc
    ctx.edit_history.setdefault(path, []).append(previous)


def snippet(text: str, first_changed: int, changed_lines: int) -> str:
    lines = text.split("\n")
    start = max(first_changed - SNIPPET_CONTEXT, 0)
    end = min(first_changed + changed_lines + SNIPPET_CONTEXT, len(lines))
    return numbered(lines[start:end], start + 1)


async def view(ctx: ToolContext, path: str, args: dict[str, Any]) -> str:
    kind = await kind_of(ctx, path)
    if kind == "dir":
        quoted = shlex.quote(path)
        listing = f"find {quoted} -maxdepth 2 -not -path '*/.git' -not -path '*/.git/*' | sort"
        result = await ctx.sandbox.run(f"{listing} | head -n 500", timeout=30)
        return f"Files and directories up to 2 levels deep in {path}:\n{result.output}"
    if kind != "file":
        raise ToolError(f"{path} does not exist.")
    lines = (await read_text(ctx, path)).split("\n")
    start, end = view_bounds(args.get("view_range"), len(lines))
    return numbered(lines[start - 1 : end], start)


def view_bounds(view_range: Any, line_count: int) -> tuple[int, int]:
    if view_range is None:
        return 1, line_count
    if not isinstance(view_range, list) or len(view_range) != 2:
        raise ToolError("`view_range` must be two integers [start, end].")
    start, end = view_range
    end = line_count if end == -1 else end
    if not 1 <= start <= line_count or not start <= end:
        raise ToolError(f"`view_range` {view_range} is outside the file's 1..{line_count} lines.")
    return start, min(end, line_count)


async def create(ctx: ToolContext, path: str, args: dict[str, Any]) -> str:
    if "file_text" not in args or args["file_text"] is None:
        raise ToolError("`create` needs `file_text`.")
    if await kind_of(ctx, path):
        raise ToolError(f"{path} already exists; edit it with `str_replace` or `insert`.")
    await write_text(ctx, path, str(args["file_text"]), None)
    return f"Created {path}."


async def str_replace(ctx: ToolContext, path: str, args: dict[str, Any]) -> str:
    old, new = args.get("old_str"), str(args.get("new_str") or "")
    if not old:
        raise ToolError("`str_replace` needs a non-empty `old_str`.")
    text = await existing_text(ctx, path)
    count = text.count(old)
    if count == 0:
        raise ToolError(f"No replacement: `old_str` does not occur verbatim in {path}.")
    if count > 1:
        at = [text[:i].count("\n") + 1 for i in occurrences(text, old)]
        raise ToolError(
            f"`old_str` occurs {count} times (lines {at}); add context to make it unique."
        )
    updated = text.replace(old, new, 1)
    await write_text(ctx, path, updated, text.encode())
    first = text[: text.index(old)].count("\n")
    shown = snippet(updated, first, new.count("\n") + 1)
    return f"Edited {path}. The changed region:\n{shown}\nCheck that it is what you intended."


def occurrences(text: str, needle: str) -> list[int]:
    found, start = [], text.find(needle)
    while start >= 0:
        found.append(start)
        start = text.find(needle, start + 1)
    return found


async def insert(ctx: ToolContext, path: str, args: dict[str, Any]) -> str:
    line, new = args.get("insert_line"), args.get("new_str")
    if new is None or not isinstance(line, int):
        raise ToolError("`insert` needs `insert_line` and `new_str`.")
    text = await existing_text(ctx, path)
    lines = text.split("\n")
    if not 0 <= line <= len(lines):
        raise ToolError(f"`insert_line` must be between 0 and {len(lines)}.")
    added = str(new).split("\n")
    updated = "\n".join([*lines[:line], *added, *lines[line:]])
    await write_text(ctx, path, updated, text.encode())
    return f"Inserted into {path}:\n{snippet(updated, line, len(added))}"


async def existing_text(ctx: ToolContext, path: str) -> str:
    if await kind_of(ctx, path) != "file":
        raise ToolError(f"{path} is not an existing file; create it with `create`.")
    return await read_text(ctx, path)


async def undo_edit(ctx: ToolContext, path: str, args: dict[str, Any]) -> str:
    history = ctx.edit_history.get(path)
    if not history:
        raise ToolError(f"No edit of {path} to undo.")
    previous = history.pop()
    if previous is None:
        await ctx.sandbox.run(f"rm -f {shlex.quote(path)}", timeout=30)
        return f"Undid the creation of {path}; it is removed."
    await ctx.sandbox.write_file(path, previous)
    return f"Reverted the last edit of {path}."


async def syntax_error(ctx: ToolContext, source: str, shown_as: str) -> str | None:
    """Python's syntax error for the file `source`, reported under the name `shown_as`."""
    if ctx.has_python is None:
        probe = await ctx.sandbox.run("command -v python3", timeout=30)
        ctx.has_python = probe.ok
    if not ctx.has_python:
        return None
    check = f"{SYNTAX_CHECK} {shlex.quote(source)} {shlex.quote(shown_as)} 2>&1 | tail -n 6"
    output = (await ctx.sandbox.run(check, timeout=60)).output.strip()
    return output or None


async def introduced_syntax_error(ctx: ToolContext, path: str) -> str | None:
    """The file's syntax error, unless the version before the edit had the same one."""
    error = await syntax_error(ctx, path, path)
    previous = (ctx.edit_history.get(path) or [None])[-1]
    if error is None or previous is None:
        return error
    # The previous version goes under .git/ so it never shows in the workspace diff.
    scratch = posixpath.join(ctx.sandbox.workspace, ".git", "qwen-fix-syntax-check.py")
    await ctx.sandbox.write_file(scratch, previous)
    before = await syntax_error(ctx, scratch, path)
    await ctx.sandbox.run(f"rm -f {shlex.quote(scratch)}", timeout=30)
    # Line numbers shift with the edit, so compare the error itself (the last line).
    same = before is not None and before.splitlines()[-1] == error.splitlines()[-1]
    return None if same else error


COMMANDS = {
    "view": view,
    "create": create,
    "str_replace": str_replace,
    "insert": insert,
    "undo_edit": undo_edit,
}


async def run(ctx: ToolContext, args: dict[str, Any]) -> str:
    command, path = args["command"], absolute(ctx, str(args["path"]))
    if ctx.read_only and command in EDIT_COMMANDS:
        raise ToolError("This is a planning task: files are read-only. Use `view` only.")
    observation = await COMMANDS[command](ctx, path, args)
    if command in ("create", "str_replace", "insert") and path.endswith(".py"):
        error = await introduced_syntax_error(ctx, path)
        if error:
            observation += f"\n\nThis edit introduced a Python syntax error:\n{error}\nFix it."
    return observation
