"""Keeping tool output within bounds: long text is cut in the middle and the cut is reported."""

from __future__ import annotations


def cut_middle(text: str, limit: int) -> str:
    """`text` unchanged if it fits in `limit` characters, else its head and tail with a marker."""
    if len(text) <= limit:
        return text
    keep = max(limit // 2, 1)
    cut = len(text) - 2 * keep
    marker = f"\n[... {cut} characters cut from the middle of this output ...]\n"
    return text[:keep] + marker + text[-keep:]


def numbered(lines: list[str], first: int) -> str:
    """Lines prefixed with their 1-based numbers, as `cat -n` prints them."""
    return "\n".join(f"{first + i:6}\t{line}" for i, line in enumerate(lines))
