"""PrefixCache: how many prompt tokens a server with prefix caching finds already computed.

Every served sequence (prompt plus generated tokens, EOS included) stays cached; nothing is
evicted. A new prompt hits the longest common token prefix with any of them, capped at its
length minus one (vLLM's `KVCacheManager.get_computed_blocks` recomputes the last token to get
logits; SGLang matches on `input_ids[:-1]`), rounded down to whole KV blocks (16 tokens in
vLLM, pages of 1 in SGLang).
"""

from __future__ import annotations

from bisect import bisect_right
from itertools import accumulate

from tests.model_server.tokens import common_prefix_tokens


def common_prefix_chars(a: str, b: str) -> int:
    """The longest common prefix of two strings (binary search on slices, compared in C)."""
    if a.startswith(b) or b.startswith(a):
        return min(len(a), len(b))
    low, high = 0, min(len(a), len(b))
    while low < high:
        middle = (low + high + 1) // 2
        if a[:middle] == b[:middle]:
            low = middle
        else:
            high = middle - 1
    return low


def shared_tokens(prompt: list[str], tokens: list[str], chars: int) -> int:
    """The common token prefix, guessed from the common characters and checked."""
    guess = bisect_right(list(accumulate(map(len, prompt))), chars)
    if prompt[:guess] != tokens[:guess]:
        return common_prefix_tokens(prompt, tokens)
    while guess < min(len(prompt), len(tokens)) and prompt[guess] == tokens[guess]:
        guess += 1
    return guess


class PrefixCache:
    """The sequences served so far and the cached-token count of a new prompt against them."""

    def __init__(self, block_size: int) -> None:
        self.block_size = block_size
        self._sequences: list[tuple[str, list[str]]] = []

    def cached_tokens(self, prompt: list[str]) -> int:
        if not self._sequences:
            return 0
        # The sequence sharing the most characters is the one sharing the most tokens; only
        # that one is compared token by token.
        text = "".join(prompt)
        shared = [(common_prefix_chars(text, seq_text), seq) for seq_text, seq in self._sequences]
        chars, tokens = max(shared, key=lambda pair: pair[0])
        hit = min(shared_tokens(prompt, tokens, chars), len(prompt) - 1)
        return max(hit, 0) // self.block_size * self.block_size

    def add(self, sequence: list[str]) -> None:
        self._sequences.append(("".join(sequence), sequence))
