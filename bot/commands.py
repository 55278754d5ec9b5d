"""Comment commands: `/qwen-fix …` or `@qwen-fix …`, parsed into a verb and its free text."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

Verb = Literal["fix", "plan", "ask", "stop", "retry", "status", "fix-ci"]
VERBS: tuple[Verb, ...] = ("fix", "plan", "ask", "stop", "retry", "status", "fix-ci")
"""`fix-ci`, on a pull request: read its failed checks and push a fix, even where automatic
fixing stopped or paused."""


@dataclass(frozen=True, slots=True)
class Command:
    verb: Verb
    text: str
    """What follows the verb: the instruction, the question, or nothing."""


def parse_command(body: str, name: str) -> Command | None:
    """The command a comment starts with, or None.

    `/name` or `@name` must open the comment (after blank space) as a whole word:
    `@qwen-fixer` and `email@qwen-fix` are not ours. With no known verb, the verb is `fix`
    and the whole rest is the instruction.
    """
    match = _opening(name).match(body)
    if match is None:
        return None
    return _split(match.group("rest"))


def mentions(body: str, name: str) -> bool:
    """True when `@name` appears anywhere as a whole word (outside code spans and quotes)."""
    return _mention(name).search(_prose(body)) is not None


def parse_mention(body: str, name: str) -> Command:
    """The command of a comment that mentions the app somewhere: the text after the mention.

    A follow-up comment usually reads "…this breaks X. @qwen-fix please handle None here";
    the instruction is the whole comment then, so nothing the reviewer wrote is lost.
    """
    opening = parse_command(body, name)
    if opening is not None:
        return opening
    return Command("fix", body.strip())


def _opening(name: str) -> re.Pattern[str]:
    return re.compile(rf"\A\s*[/@]{re.escape(name)}(?![\w-])(?P<rest>.*)\Z", re.S | re.I)


def _mention(name: str) -> re.Pattern[str]:
    return re.compile(rf"(?<![\w@/.-])@{re.escape(name)}(?![\w-])", re.I)


_VERB = re.compile(r"(?P<verb>\w[\w-]*)[:,.!]?(?:\s+|\Z)(?P<tail>.*)\Z", re.S)


def _split(rest: str) -> Command:
    rest = rest.strip()
    match = _VERB.match(rest)
    if match is not None:
        verb = match.group("verb").lower()
        for known in VERBS:
            if verb == known:
                return Command(known, match.group("tail").strip())
    return Command("fix", rest)


def _prose(body: str) -> str:
    """The body without fenced code, inline code and quoted lines: a mention there is not a call."""
    without_fences = re.sub(r"```.*?(```|\Z)", "", body, flags=re.S)
    without_inline = re.sub(r"`[^`\n]*`", "", without_fences)
    return "\n".join(
        line for line in without_inline.splitlines() if not line.lstrip().startswith(">")
    )
