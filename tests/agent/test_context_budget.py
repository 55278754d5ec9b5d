"""The context budget: every request's prompt plus its output reservation fits the window, in
the server's own token count once it has counted, with a margin for what it has not."""

from __future__ import annotations

from typing import Any

import pytest

from workers.agent.context_budget import MIN_OUTPUT, ContextBudget, message_chars


def message(text: str, role: str = "user") -> dict[str, Any]:
    return {"role": role, "content": text}


@pytest.mark.parametrize(
    ("window", "budget", "output"),
    [(262_144, 16_384, 16_384), (131_072, 16_384, 16_384), (32_768, 16_384, 8_192),
     (8_192, 16_384, 2_048), (2_048, 16_384, MIN_OUTPUT)],
)  # fmt: skip
def test_the_output_reservation_shrinks_with_small_windows(
    window: int, budget: int, output: int
) -> None:
    context = ContextBudget(window=window, output_budget=budget)
    assert context.output == output
    # The room left for the prompt never falls below the reservation's own share.
    assert context.prompt_room + context.output <= window


def test_once_the_server_counted_only_new_messages_are_estimated() -> None:
    context = ContextBudget(window=32_768, output_budget=8_192)
    history = [message("x" * 4_000, "system"), message("y" * 4_000)]
    context.observe(history, prompt_tokens=2_000, completion=100)
    reply = message("z" * 400, "assistant")
    fresh = message("w" * 4_000, "tool")
    # 2,000 prompt + 100 completion, then 4,000 characters at this conversation's rate
    # (8,000 / (2,000 - 16) ≈ 4.03 characters a token), with the margin.
    estimate = context.estimate([*history, reply, fresh])
    assert 2_100 + 1_000 < estimate < 2_100 + 1_300


def test_dense_text_is_not_underestimated_once_seen() -> None:
    """Code and JSON run fewer characters a token: the learned rate follows the server."""
    context = ContextBudget(window=32_768, output_budget=8_192)
    history = [message("1234567\n" * 500)]  # Qwen counts each digit: ~1 token a character
    context.observe(history, prompt_tokens=4_000, completion=10)
    assert context.chars_per_token < 1.01  # as dense as the server says
    more = [*history, message("ok", "assistant"), message("1234567\n" * 500, "tool")]
    assert context.estimate(more) > 4_010 + 4_000


def test_condensed_text_comes_off_the_count_erring_large() -> None:
    context = ContextBudget(window=32_768, output_budget=8_192)
    history = [message("a" * 8_000), message("b" * 8_000, "tool")]
    context.observe(history, prompt_tokens=4_016, completion=0)  # 4 characters a token
    context.elided(7_900)
    # 7,900 characters are 1,975 tokens at 4 a token; fewer come off (the margin).
    assert 4_016 - 1_975 < context.estimate([*history, message("")]) < 4_016 - 1_600


def test_a_refusal_calibrates_the_count_of_the_refused_prompt() -> None:
    context = ContextBudget(window=32_768, output_budget=8_192)
    history = [message("a" * 60_000)]
    context.calibrate(history, prompt_tokens=30_000)  # 2 characters a token
    assert context.estimate(history) <= 30_001  # the count, and nothing guessed on top
    assert context.chars_per_token < 2.01


def test_max_tokens_shrinks_to_fit_and_gives_up_below_the_minimum() -> None:
    context = ContextBudget(window=32_768, output_budget=8_192)
    assert context.max_tokens_for(10_000) == 8_192
    assert context.max_tokens_for(30_000) == 32_768 - 30_000 - 655
    assert context.max_tokens_for(31_500) is None


def test_tool_calls_and_reasoning_count_as_prompt() -> None:
    call = {"id": "c", "type": "function", "function": {"name": "bash", "arguments": "{}"}}
    assert message_chars({"role": "assistant", "content": "", "tool_calls": [call]}) > 40
    assert message_chars({"role": "assistant", "content": "a", "reasoning": "b" * 10}) == 11
