"""The Toolbox: the schemas the model sees and the dispatch of a checked call to its tool."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from workers.agent.toolcall import ToolCall
from workers.agent.tools import bash, editor, run_tests, search, submit, todo
from workers.agent.tools.context import ToolContext
from workers.agent.tools.errors import ToolError
from workers.agent.tools.observation import cut_middle

ToolFunction = Callable[[ToolContext, dict[str, Any]], Awaitable[str]]

ALL_TOOLS: dict[str, tuple[dict[str, Any], ToolFunction]] = {
    "bash": (bash.SCHEMA, bash.run),
    "str_replace_editor": (editor.SCHEMA, editor.run),
    "search": (search.SCHEMA, search.run),
    "todo": (todo.SCHEMA, todo.run),
    "run_tests": (run_tests.SCHEMA, run_tests.run),
    "submit": (submit.SCHEMA, submit.run),
}


@dataclass(frozen=True)
class Observation:
    """What a tool call returned, already cut to size."""

    text: str
    is_error: bool = False


class Toolbox:
    """The tools of one run, bound to its ToolContext."""

    def __init__(self, context: ToolContext) -> None:
        self.context = context
        self.tools = dict(ALL_TOOLS)
        if context.test_command is None:
            del self.tools["run_tests"]

    @property
    def schemas(self) -> list[dict[str, Any]]:
        return [schema for schema, _ in self.tools.values()]

    async def execute(self, call: ToolCall) -> Observation:
        """Run one checked call; a ToolError becomes an error observation for the model."""
        _, function = self.tools[call.name]
        try:
            text = await function(self.context, call.arguments)
        except ToolError as exc:
            return Observation(f"Error: {exc}", is_error=True)
        return Observation(cut_middle(text, self.context.observation_limit))
