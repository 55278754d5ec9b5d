"""Pure renderers of what the app writes on GitHub: pull request bodies and check run output."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from bot.redaction import redact
from workers.change_guard import LeftOut, left_out_markdown

GITHUB_BODY_LIMIT = 65_536


@dataclass(frozen=True, slots=True)
class PlanItem:
    text: str
    done: bool


@dataclass(frozen=True, slots=True)
class Verification:
    command: str | None
    passed: bool | None
    """None when no test command was found."""
    log: str


@dataclass(frozen=True, slots=True)
class RunStats:
    model: str
    turns: int
    prompt_tokens: int
    cached_tokens: int
    completion_tokens: int
    seconds: float
    exit_status: str


@dataclass(frozen=True, slots=True)
class PullRequestContent:
    issue_number: int
    issue_title: str
    summary: str
    plan: Sequence[PlanItem]
    diff_stat: str
    tests: Verification
    stats: RunStats
    command_name: str = "qwen-fix"
    left_out: Sequence[LeftOut] = ()
    """Paths of the agent's change the app did not publish, with the reasons."""
    run_url: str | None = None
    """The run's page in the run viewer, when PUBLIC_URL is set."""


def clamp(body: str, limit: int = GITHUB_BODY_LIMIT) -> str:
    """A comment or PR body GitHub accepts, with secrets masked: over the limit, the middle
    is cut. Every text the app writes on GitHub goes through here."""
    body = redact(body)
    return body if len(body) <= limit else _cut_middle(body, limit)


def pull_request_title(issue_number: int, issue_title: str) -> str:
    return redact(f"Fix #{issue_number}: {issue_title}")[:256]


def pull_request_body(content: PullRequestContent) -> str:
    """The PR body; the test log is cut from the middle so the body fits GitHub's limit."""
    head = _body_head(content)
    tail = _body_tail(content)
    room = GITHUB_BODY_LIMIT - len(head) - len(tail) - 200
    return head + _fenced(_cut_middle(content.tests.log, max(room, 0))) + tail


def _body_head(c: PullRequestContent) -> str:
    plan = "\n".join(f"- [{'x' if item.done else ' '}] {item.text}" for item in c.plan)
    parts = [
        c.summary.strip() or "_The agent wrote no summary._",
        f"Fixes #{c.issue_number}",
        "### Plan\n" + (plan or "_No plan was recorded._"),
        "### Changes\n" + _fenced(c.diff_stat.strip() or "(no changes)"),
    ]
    if c.left_out:
        parts.append(left_out_markdown(c.left_out))
    parts += [
        "### Tests\n" + _test_verdict(c.tests),
    ]
    summary = "Test log" if c.tests.command else "Why there is no test log"
    return "\n\n".join(parts) + f"\n\n<details><summary>{summary}</summary>\n\n"


def _body_tail(c: PullRequestContent) -> str:
    s = c.stats
    run = (
        f"Model `{s.model}` · {s.turns} turns · {s.prompt_tokens:,} prompt tokens "
        f"({s.cached_tokens:,} cached) · {s.completion_tokens:,} completion tokens · "
        f"{_duration(s.seconds)} · ended: {s.exit_status}"
    )
    if c.run_url:
        run += f" · [every step of the run]({c.run_url})"
    return (
        "\n</details>\n\n### Run\n" + run + "\n\n"
        f"To ask for changes, mention `@{c.command_name}` in a review comment or in this "
        "conversation and say what to change: each request becomes a new commit here.\n"
    )


def _test_verdict(tests: Verification) -> str:
    if tests.command is None:
        return "⚠️ No test command was found for this repository, so nothing was run."
    if tests.passed:
        return f"✅ `{tests.command}` passed."
    return f"❌ `{tests.command}` failed. This pull request is a draft until that is looked at."


def _fenced(text: str) -> str:
    fence = "```"
    while fence in text:
        fence += "`"
    return f"{fence}\n{text}\n{fence}"


def _cut_middle(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    keep = max(limit - 100, 0)
    head, tail = text[: keep // 2], text[len(text) - keep // 2 :]
    return f"{head}\n… {len(text) - len(head) - len(tail):,} characters cut …\n{tail}"


def _duration(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    return f"{minutes} min {secs} s" if minutes else f"{secs} s"


CHECK_OUTPUT_LIMIT = 65_535
"""GitHub's limit on each of a check run's `output.summary` and `output.text`."""


def check_run_output(tests: Verification) -> tuple[str, str, str]:
    """(title, summary, text) of the check run: the log split over summary and text, each
    within GitHub's limit; a log longer than both loses its middle."""
    title = {True: "Tests passed", False: "Tests failed", None: "No tests ran"}[tests.passed]
    head = redact(_test_verdict(tests)) + "\n\n"
    room = CHECK_OUTPUT_LIMIT - len(head) - 40  # fences and newlines
    log = _cut_middle(redact(tests.log), 2 * room)
    first, rest = log[:room], log[room:]
    return title, head + _fenced(first), _fenced(rest) if rest else ""


CI_FIXES_START = "<!-- qwen-fix:ci-fixes -->"
CI_FIXES_END = "<!-- /qwen-fix:ci-fixes -->"


def with_ci_fixes(body: str, lines: Sequence[str]) -> str:
    """The pull request body with its "CI fixes" section (between hidden markers) replaced by
    `lines`, or added at the end; the rest of the body, edited by people or not, is kept."""
    section = "\n".join([CI_FIXES_START, "### CI fixes", "", *lines, CI_FIXES_END])
    start, end = body.find(CI_FIXES_START), body.find(CI_FIXES_END)
    if start != -1 and end > start:
        return clamp(body[:start] + section + body[end + len(CI_FIXES_END) :])
    return clamp(f"{body.rstrip()}\n\n{section}")
