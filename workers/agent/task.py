"""What the agent is asked to do: the issue, the repository's guidance and how to test."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class Task:
    """One issue to solve in one repository checkout."""

    title: str
    """Untrusted: written by the issue's author."""
    body: str
    """Untrusted: the issue's text (for a follow-up, the thread and the original issue)."""
    guidance: str = ""
    """Text of the repository's agent guidance files (AGENTS.md, QWEN.md, ...), if any."""
    test_command: str | None = None
    """Shell command that runs the repository's tests from its root; None when unknown."""
    mode: Literal["fix", "plan", "ask"] = "fix"
    """"fix" edits and tests; "plan" only investigates and writes a plan; "ask" only answers."""
    request: str = ""
    """Trusted: what the person who started this run asked, verbatim. The receiver checked that
    they can write to the repository."""
    requested_by: str = ""
    """The login of that person."""
    no_test_reason: str = ""
    """With no test command: why none is known and how a maintainer sets one."""
