"""What the tools share during one run: the sandbox, the task's test command and the run's state."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Literal

from sandbox.protocol import Sandbox

TodoStatus = Literal["pending", "in_progress", "done"]


@dataclass
class TodoItem:
    """One line of the agent's plan."""

    text: str
    status: TodoStatus = "pending"

    @property
    def done(self) -> bool:
        return self.status == "done"


@dataclass(frozen=True)
class TestRun:
    """The outcome of one `run_tests` call."""

    __test__ = False  # not a pytest test class despite the name

    command: str
    exit_code: int
    output: str
    duration: float
    timed_out: bool = False

    @property
    def passed(self) -> bool:
        return self.exit_code == 0 and not self.timed_out


@dataclass
class ToolContext:
    """State one run's tools read and write."""

    sandbox: Sandbox
    test_command: str | None = None
    test_timeout: float = 900.0
    command_timeout: float = 120.0
    observation_limit: int = 16_000
    read_only: bool = False
    plan: list[TodoItem] = field(default_factory=list)
    on_plan_change: Callable[[list[TodoItem]], Awaitable[None]] | None = None
    last_test_run: TestRun | None = None
    submit_requested: bool = False
    edit_history: dict[str, list[bytes | None]] = field(default_factory=dict)
    has_python: bool | None = None
