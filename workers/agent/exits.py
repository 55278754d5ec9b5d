"""The ways a run ends, carried through the loop as exceptions that hold the status and reason."""

from __future__ import annotations

from typing import Literal

ExitStatus = Literal[
    "submitted",
    "step_limit",
    "token_limit",
    "cost_limit",
    "time_limit",
    "stuck",
    "model_error",
    "context_exhausted",
    "format_error",
    "sandbox_error",
]

CUT_SHORT: frozenset[ExitStatus] = frozenset({"model_error", "format_error", "sandbox_error"})
"""Runs cut short by a fault (the model server gave up, its replies held no usable tool call,
the sandbox broke) rather than ended by the agent or a budget: the job fails with the reason,
and the change made so far is kept in a draft pull request."""


class AgentExit(Exception):
    """Ends the run with `status`; `reason` is for humans (PR body, logs)."""

    status: ExitStatus = "model_error"

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Submitted(AgentExit):
    """The model confirmed its work with a second `submit`; `reason` is its summary."""

    status = "submitted"


class StepLimitReached(AgentExit):
    status = "step_limit"


class TokenLimitReached(AgentExit):
    status = "token_limit"


class CostLimitReached(AgentExit):
    status = "cost_limit"


class TimeLimitReached(AgentExit):
    status = "time_limit"


class Stuck(AgentExit):
    status = "stuck"


class ModelFailed(AgentExit):
    status = "model_error"


class ContextExhausted(AgentExit):
    """The conversation cannot be made to fit the server's window any more."""

    status = "context_exhausted"


class TooManyFormatErrors(AgentExit):
    status = "format_error"


class SandboxFailed(AgentExit):
    status = "sandbox_error"
