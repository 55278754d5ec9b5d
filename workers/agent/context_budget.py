"""The context budget: how big the next prompt will be, and what it may be, in real tokens.

The server's window (`max_model_len`) bounds prompt plus `max_tokens` of every request: vLLM
refuses anything more with a 400. So each request reserves its output first (the profile's
budget, smaller in small windows), and the prompt must fit the rest. The prompt's size is known
exactly once the server answers (`usage.prompt_tokens`, and the reply's own completion tokens
join the next prompt); only what was added since is estimated, at the characters-per-token rate
this very conversation has shown, with a margin. Before the first answer everything is
estimated at a conservative rate.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

FIRST_GUESS_CHARS_PER_TOKEN = 3.0
"""Before the server has counted anything: code and JSON run 3 to 4 characters a token."""
ESTIMATE_MARGIN = 1.15
"""Estimates of text the server has not counted yet are raised by this much."""
MESSAGE_OVERHEAD = 8
"""Tokens of chat-template framing around each message."""
MIN_OUTPUT = 1_024
"""Fewest output tokens a request may reserve: less cannot hold one edit."""
OUTPUT_SHARE = 4
"""In a small window the output reservation is at most a quarter of it."""
SAFETY = 0.02
"""Share of the window kept free for tokenizer and template differences."""


def message_chars(message: dict[str, Any]) -> int:
    """Characters the chat template renders for a message: content, tool calls, reasoning."""
    total = len(str(message.get("content") or ""))
    for key in ("reasoning", "reasoning_content"):
        total += len(str(message.get(key) or ""))
    if message.get("tool_calls"):
        total += len(json.dumps(message["tool_calls"], ensure_ascii=False))
    return total


@dataclass
class ContextBudget:
    """One run's window and what its prompts take of it."""

    window: int
    output_budget: int
    tools_chars: int = 0
    chars_per_token: float = FIRST_GUESS_CHARS_PER_TOKEN
    known_tokens: int | None = None
    """Prompt plus completion tokens of the last exchange, as the server counted them."""
    known_messages: int = 0
    """How many messages that count covers (the prompt's, and the reply)."""

    @property
    def output(self) -> int:
        """`max_tokens` to ask for: the budget, at most a quarter of a small window (but not
        below MIN_OUTPUT unless the budget itself is)."""
        return min(self.output_budget, max(MIN_OUTPUT, self.window // OUTPUT_SHARE))

    @property
    def prompt_room(self) -> int:
        """The largest prompt that leaves room for the output reservation."""
        return self.window - self.output - int(self.window * SAFETY)

    def estimate(self, messages: list[dict[str, Any]]) -> int:
        """Tokens of the prompt these messages make."""
        if self.known_tokens is not None and self.known_messages <= len(messages):
            fresh = messages[self.known_messages :]
            return self.known_tokens + self._guess(fresh)
        return self._guess(messages) + self._tokens(self.tools_chars)

    def observe(self, messages: list[dict[str, Any]], prompt_tokens: int, completion: int) -> None:
        """The server counted `prompt_tokens` for `messages`; the reply (appended next) took
        `completion` tokens. Learns this conversation's rate of characters per token."""
        if prompt_tokens <= 0:
            return
        chars = sum(message_chars(m) for m in messages) + self.tools_chars
        framing = MESSAGE_OVERHEAD * len(messages)
        if prompt_tokens > framing:
            rate = chars / (prompt_tokens - framing)
            # Qwen's tokenizer takes digits one by one: number-heavy text runs near 1.
            self.chars_per_token = min(max(rate, 0.8), 6.0)
        self.known_tokens = prompt_tokens + completion
        self.known_messages = len(messages) + 1

    def elided(self, characters: int) -> None:
        """Condensation took `characters` out of messages the server has counted: take their
        tokens off the count, at the learned rate and erring large (fewer taken off)."""
        if self.known_tokens is not None:
            taken = int(characters / (self.chars_per_token * ESTIMATE_MARGIN))
            self.known_tokens = max(self.known_tokens - taken, 0)

    def calibrate(self, messages: list[dict[str, Any]], prompt_tokens: int) -> None:
        """The server said how long a refused prompt was: learn the rate and the count."""
        self.observe(messages, prompt_tokens, 0)
        self.known_messages = len(messages)

    def max_tokens_for(self, prompt: int) -> int | None:
        """`max_tokens` for a prompt of `prompt` tokens: the reservation, or less to fit;
        None when not even MIN_OUTPUT fits."""
        room = self.window - prompt - int(self.window * SAFETY)
        if room < min(MIN_OUTPUT, self.output):
            return None
        return min(self.output, room)

    def _guess(self, messages: list[dict[str, Any]]) -> int:
        chars = sum(message_chars(m) for m in messages)
        return self._tokens(chars) + MESSAGE_OVERHEAD * len(messages)

    def _tokens(self, chars: int) -> int:
        return int(chars / self.chars_per_token * ESTIMATE_MARGIN) + 1
