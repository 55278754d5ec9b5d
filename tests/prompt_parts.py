"""Reading a task prompt as the model does: what lies inside the run's untrusted fences, and not."""

from __future__ import annotations

import re
from dataclasses import dataclass

OPENING = re.compile(r"<untrusted-([0-9a-f]{16}) source=\"([^\"]*)\">\n")


@dataclass(frozen=True)
class PromptParts:
    boundary: str
    fenced: dict[str, str]
    """Untrusted text by source."""
    outside: str
    """Everything else: our words and the trusted request."""


def split_prompt(prompt: str) -> PromptParts:
    """The prompt's fences (all with the one boundary the prompt names) and the rest."""
    first = OPENING.search(prompt)
    assert first is not None, f"no untrusted fence in the prompt:\n{prompt}"
    boundary = first.group(1)
    closing = f"\n</untrusted-{boundary}>"
    fenced: dict[str, str] = {}
    outside, rest = [], prompt
    while (match := OPENING.search(rest)) is not None:
        assert match.group(1) == boundary, "two fence boundaries in one prompt"
        end = rest.index(closing, match.end())
        outside.append(rest[: match.start()])
        fenced[match.group(2)] = rest[match.end() : end]
        rest = rest[end + len(closing) :]
    outside.append(rest)
    return PromptParts(boundary, fenced, "".join(outside))
