"""A deterministic stand-in for Qwen's BPE tokenizer: `tokenize(text)` and `count_tokens(text)`.

The rule, close enough to Qwen2/Qwen3's byte-level BPE to make symbol-heavy text (code, JSON,
tool-call XML) cost more tokens per character than prose:

- each chat-template special token (`SPECIAL_TOKENS`: `<|im_start|>`, `<tool_call>`, ...) is
  one token, as in Qwen's vocabulary;
- a word, a run of ASCII letters with at most one leading character that is not a letter, a
  digit or a line break (a space, `_`, `.`, `(`, `<`, ...), costs one token per 10 letters
  started; the leading character rides with the first piece. This is the shape of Qwen's
  pre-tokenizer rule `[^\\r\\n\\p{L}\\p{N}]?\\p{L}+`;
- every digit is its own token: Qwen's pre-tokenizer splits numbers with `\\p{N}`, one digit at a
  time (unlike GPT-4's groups of three);
- every other character (punctuation, symbols, non-ASCII letters) is one token;
- a run of whitespace is one token, except that a run of spaces or tabs hands its last space to
  a following word.

`"".join(tokenize(text)) == text` always holds, so a text can be cut at a token boundary.

`rule="chars4"` is the old estimate of this fake, one token per 4 characters (pieces of 4
characters), kept for the lenient COMPAT preset that existing tests were written against.
"""

from __future__ import annotations

import re
from typing import Literal

TokenRule = Literal["qwen", "chars4"]

SPECIAL_TOKENS = (
    "<|im_start|>",
    "<|im_end|>",
    "<|endoftext|>",
    "<tool_call>",
    "</tool_call>",
    "<tool_response>",
    "</tool_response>",
    "<think>",
    "</think>",
)
LETTERS_PER_TOKEN = 10

TOKEN_REGEX = re.compile(
    "|".join(re.escape(token) for token in SPECIAL_TOKENS)
    + rf"|[^\r\nA-Za-z0-9]?[A-Za-z]{{1,{LETTERS_PER_TOKEN}}}"
    + r"|[0-9]"
    + r"|[ \t]+(?=[ \t][A-Za-z])"
    + r"|\s+"
    + r"|."
)


CHARS_PER_TOKEN = 4


def tokenize(text: str, rule: TokenRule = "qwen") -> list[str]:
    """The token pieces of `text`, in order; they concatenate back to `text`."""
    if rule == "chars4":
        return [text[i : i + CHARS_PER_TOKEN] for i in range(0, len(text), CHARS_PER_TOKEN)]
    return TOKEN_REGEX.findall(text)


def count_tokens(text: str, rule: TokenRule = "qwen") -> int:
    """How many tokens `text` costs under the rule in this module's docstring."""
    return len(tokenize(text, rule))


def common_prefix_tokens(a: list[str], b: list[str]) -> int:
    """The length of the longest common prefix of two token lists (binary search on slices)."""
    low, high = 0, min(len(a), len(b))
    while low < high:
        middle = (low + high + 1) // 2
        if a[:middle] == b[:middle]:
            low = middle
        else:
            high = middle - 1
    return low
