"""The `todo` tool: the agent's plan as a checklist, shown live through the observer hook."""

from __future__ import annotations

from typing import Any, cast, get_args

from workers.agent.tools.context import TodoItem, TodoStatus, ToolContext
from workers.agent.tools.errors import ToolError

STATUSES = list(get_args(TodoStatus))
MARKS = {"pending": "[ ]", "in_progress": "[~]", "done": "[x]"}

SCHEMA: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "todo",
        "description": (
            "Keep your plan as a checklist. `set` replaces the whole list with `items`; `update` "
            "changes the status of item number `index` (1-based); `view` shows the list."
        ),
        "parameters": {
            "type": "object",
            "properties": {
                "command": {"type": "string", "enum": ["set", "update", "view"]},
                "items": {
                    "type": "array",
                    "description": "For `set`: the steps, in order.",
                    "items": {
                        "type": "object",
                        "properties": {
                            "content": {"type": "string"},
                            "status": {"type": "string", "enum": STATUSES},
                        },
                        "required": ["content"],
                    },
                },
                "index": {"type": "integer", "description": "For `update`: item number."},
                "status": {"type": "string", "enum": STATUSES},
            },
            "required": ["command"],
        },
    },
}


def render(plan: list[TodoItem]) -> str:
    if not plan:
        return "The plan is empty."
    return "\n".join(f"{n}. {MARKS[item.status]} {item.text}" for n, item in enumerate(plan, 1))


def parse_items(raw: Any) -> list[TodoItem]:
    if not isinstance(raw, list) or not raw:
        raise ToolError("`set` needs `items`: a non-empty list of {content, status}.")
    items = []
    for entry in raw:
        entry = {"content": entry} if isinstance(entry, str) else entry
        if not isinstance(entry, dict) or not str(entry.get("content") or "").strip():
            raise ToolError(f"Each item needs a non-empty `content`; got {entry!r}.")
        status = entry.get("status") or "pending"
        if status not in STATUSES:
            raise ToolError(f"Status must be one of {STATUSES}; got {status!r}.")
        items.append(TodoItem(str(entry["content"]).strip(), cast(TodoStatus, status)))
    return items


def update(plan: list[TodoItem], args: dict[str, Any]) -> None:
    index, status = args.get("index"), args.get("status")
    if not isinstance(index, int) or not 1 <= index <= len(plan):
        raise ToolError(f"`index` must be an item number from 1 to {len(plan)}.")
    if status not in STATUSES:
        raise ToolError(f"`status` must be one of {STATUSES}.")
    plan[index - 1].status = cast(TodoStatus, status)


async def run(ctx: ToolContext, args: dict[str, Any]) -> str:
    command = args["command"]
    if command == "view":
        return render(ctx.plan)
    if command == "set":
        ctx.plan[:] = parse_items(args.get("items"))
    else:
        update(ctx.plan, args)
    if ctx.on_plan_change is not None:
        await ctx.on_plan_change(list(ctx.plan))
    return render(ctx.plan)
