"""The hook through which a run reports progress (e.g. to a live GitHub comment)."""

from __future__ import annotations

from typing import Protocol

from workers.agent.tools.context import TodoItem
from workers.agent.trajectory import StepRecord


class AgentObserver(Protocol):
    """Receives a run's progress; implementations must be quick and must not raise."""

    async def plan_changed(self, plan: list[TodoItem]) -> None: ...

    async def step_finished(self, record: StepRecord) -> None: ...


class Observers:
    """Several observers as one, told in order."""

    def __init__(self, *observers: AgentObserver) -> None:
        self.observers = observers

    async def plan_changed(self, plan: list[TodoItem]) -> None:
        for observer in self.observers:
            await observer.plan_changed(plan)

    async def step_finished(self, record: StepRecord) -> None:
        for observer in self.observers:
            await observer.step_finished(record)
