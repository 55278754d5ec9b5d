"""Parsing `/qwen-fix …` and `@qwen-fix …` out of comment bodies."""

from __future__ import annotations

import pytest

from bot.commands import Command, mentions, parse_command, parse_mention

NAME = "qwen-fix"


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("/qwen-fix", Command("fix", "")),
        ("@qwen-fix", Command("fix", "")),
        ("  \n/qwen-fix fix", Command("fix", "")),
        ("/Qwen-Fix PLAN", Command("plan", "")),
        ("@qwen-fix plan\nfocus on the parser", Command("plan", "focus on the parser")),
        ("/qwen-fix ask: why is x None?", Command("ask", "why is x None?")),
        ("/qwen-fix stop", Command("stop", "")),
        ("/qwen-fix retry", Command("retry", "")),
        ("/qwen-fix status", Command("status", "")),
        ("/qwen-fix please keep the API", Command("fix", "please keep the API")),
        ("/qwen-fix fixes everything", Command("fix", "fixes everything")),
        ("/qwen-fix\n\nretry", Command("retry", "")),
    ],
)
def test_commands_open_the_comment(body: str, expected: Command) -> None:
    assert parse_command(body, NAME) == expected


@pytest.mark.parametrize(
    "body",
    [
        "",
        "qwen-fix",
        "please /qwen-fix",
        "hey @qwen-fix plan",
        "@qwen-fixer plan",
        "/qwen-fix-bot",
        "/qwen-fixes",
        "> /qwen-fix",
    ],
)
def test_anything_else_is_not_a_command(body: str) -> None:
    assert parse_command(body, NAME) is None


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("Looks off. @qwen-fix please handle None", True),
        ("@QWEN-FIX do it", True),
        ("(@qwen-fix)", True),
        ("mail me at me@qwen-fix.dev", False),
        ("@qwen-fixer handle it", False),
        ("`@qwen-fix` is the bot's name", False),
        ("```\n@qwen-fix\n```", False),
        ("> @qwen-fix quoted from above", False),
        ("nobody here", False),
    ],
)
def test_mentions_are_whole_words_in_prose(body: str, expected: bool) -> None:
    assert mentions(body, NAME) is expected


def test_a_mention_inside_a_comment_keeps_the_whole_comment_as_the_request() -> None:
    body = "This breaks on empty input.\n@qwen-fix add a guard and a test"
    assert parse_mention(body, NAME) == Command("fix", body)
    assert parse_mention("@qwen-fix plan", NAME) == Command("plan", "")
