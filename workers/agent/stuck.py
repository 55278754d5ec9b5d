"""Stuck detection: the same action and result, the same error, or an A-B-A-B alternation."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class StepOutcome:
    """What one step did (its tool calls) and what came back, in comparable form."""

    action: str
    result: str
    is_error: bool


@dataclass
class StuckDetector:
    """Says why the recent steps look like a loop, or None."""

    repeats: int = 3
    """How many identical steps (or identical errors) in a row count as a loop."""
    history: list[StepOutcome] = field(default_factory=list)

    def record(self, outcome: StepOutcome) -> str | None:
        self.history.append(outcome)
        return self.repeated() or self.same_error() or self.alternating()

    def reset(self) -> None:
        self.history.clear()

    def repeated(self) -> str | None:
        recent = self.history[-self.repeats :]
        if len(recent) == self.repeats and len(set(recent)) == 1:
            return f"the same action gave the same result {self.repeats} times in a row"
        return None

    def same_error(self) -> str | None:
        recent = self.history[-self.repeats :]
        errors = {outcome.result for outcome in recent if outcome.is_error}
        if len(recent) == self.repeats and all(o.is_error for o in recent) and len(errors) == 1:
            return f"the same error came back {self.repeats} times in a row"
        return None

    def alternating(self) -> str | None:
        recent = self.history[-6:]
        if len(recent) < 6 or recent[-1] == recent[-2]:
            return None
        if all(recent[i] == recent[i % 2 - 2] for i in range(6)):
            return "the last six steps alternated between the same two actions"
        return None
