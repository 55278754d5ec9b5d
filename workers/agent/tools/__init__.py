"""The agent's tools: OpenAI function schemas and their implementations over the Sandbox."""

from workers.agent.tools.context import TestRun, TodoItem, ToolContext
from workers.agent.tools.toolbox import Observation, Toolbox

__all__ = ["Observation", "TestRun", "TodoItem", "ToolContext", "Toolbox"]
