"""How far and how long one job may go.

The operator's settings (AGENT_MAX_STEPS, AGENT_MAX_TOKENS, AGENT_WALL_TIME) are ceilings: a
repository's `limits:` can only lower them, since its config is written by whoever can push to
its default branch, not by whoever runs the GPUs. The job's own time limit (arq's timeout, the
follow-up lock) is derived from the same numbers, so no stage outlives the job.
"""

from __future__ import annotations

from typing import Any

from bot.repo_config import Limits
from workers.agent.loop import AgentConfig

SETUP_TIMEOUT = 900.0
"""Seconds the repository's setup command may run."""
PUBLISH_MARGIN = 300.0
"""Seconds for the clone, starting the sandbox, pushing and the GitHub writes around a run."""


def effective_agent_config(operator: AgentConfig, limits: Limits) -> AgentConfig:
    """The operator's limits, lowered where the repository asks for less."""
    changes: dict[str, Any] = {}
    if limits.max_steps is not None:
        changes["max_steps"] = min(operator.max_steps, limits.max_steps)
    if limits.max_tokens is not None:
        changes["max_tokens"] = min(operator.max_tokens, limits.max_tokens)
    wall_time = limits.wall_time_seconds()
    if wall_time is not None:
        changes["wall_time"] = min(operator.wall_time, wall_time)
    return operator.model_copy(update=changes)


def job_time_limit(agent: AgentConfig, test_timeout: float, queue_wait: float = 0.0) -> float:
    """Seconds one job may take in all: the wait for a model slot, setup, the agent, the
    verifying test run, publishing."""
    return queue_wait + SETUP_TIMEOUT + agent.wall_time + test_timeout + PUBLISH_MARGIN
