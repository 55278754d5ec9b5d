"""The operator's limits are ceilings: a repository's config can only lower them, and the job's
own time limit covers every stage of the effective run."""

from __future__ import annotations

from bot.repo_config import parse_repo_config
from workers.agent.loop import AgentConfig
from workers.limits import SETUP_TIMEOUT, effective_agent_config, job_time_limit

OPERATOR = AgentConfig(max_steps=50, max_tokens=1_000_000, wall_time=1800)


def test_a_repository_cannot_raise_the_operators_limits() -> None:
    greedy = parse_repo_config(
        "limits: {max_steps: 100000, max_tokens: 999999999, wall_time: 100000}"
    )
    effective = effective_agent_config(OPERATOR, greedy.limits)
    assert (effective.max_steps, effective.max_tokens, effective.wall_time) == (
        50,
        1_000_000,
        1800,
    )


def test_a_repository_can_lower_them() -> None:
    modest = parse_repo_config("limits: {max_steps: 10, max_tokens: 5000, wall_time: 5}")
    effective = effective_agent_config(OPERATOR, modest.limits)
    assert (effective.max_steps, effective.max_tokens, effective.wall_time) == (10, 5000, 300)


def test_unset_limits_keep_the_operators() -> None:
    assert effective_agent_config(OPERATOR, parse_repo_config("").limits) == OPERATOR


def test_the_job_outlives_every_stage_of_the_longest_run() -> None:
    limit = job_time_limit(OPERATOR, test_timeout=600)
    assert limit > SETUP_TIMEOUT + OPERATOR.wall_time + 600
