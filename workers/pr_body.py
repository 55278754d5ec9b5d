"""Pure renderers of what the app writes on GitHub: the pull request body and the issue comment."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

GITHUB_BODY_LIMIT = 65_536
ISSUE_COMMENT_MARKER = "<!-- qwen-fix:issue-comment -->"


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


def pull_request_title(issue_number: int, issue_title: str) -> str:
    return f"Fix #{issue_number}: {issue_title}"[:256]


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
    return (
        "\n</details>\n\n### Run\n" + run + "\n\n"
        "To ask for changes, comment on this pull request with `@qwen-fix` and what to change.\n"
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


def issue_comment_opened(pr_url: str, pr_number: int, tests: Verification) -> str:
    verdict = {
        True: "the tests pass",
        False: "the tests fail, so it is a draft",
        None: "no tests ran",
    }
    return (
        f"{ISSUE_COMMENT_MARKER}\nI opened #{pr_number} for this issue ({verdict[tests.passed]}): "
        f"{pr_url}\n"
    )


def issue_comment_failed(reason: str, label: str) -> str:
    return (
        f"{ISSUE_COMMENT_MARKER}\nI could not make a pull request for this issue: {reason}\n\n"
        f"To try again, remove the `{label}` label and add it back.\n"
    )
