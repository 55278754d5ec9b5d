"""Review follow-ups end to end: what reviewers ask on a qwen-fix pull request becomes a commit
on its branch and replies where they asked."""

from __future__ import annotations

import pytest

from tests.e2e.conftest import MakeHarness
from tests.e2e.harness import FILES, REPO, Harness, call

pytestmark = [pytest.mark.docker, pytest.mark.slow]

BRANCH = "qwen-fix/issue-1"
FIXED = FILES["calc.py"].replace("a - b", "a + b")
NEGATIVE_TEST = "from calc import add\n\n\ndef test_negative():\n    assert add(-2, -3) == -5\n"


def open_pull_request(h: Harness) -> int:
    """The state after qwen-fix fixed issue #1: its branch and its pull request."""
    h.emulator.add_user("qwen-fix[bot]", type="Bot")
    issue = h.emulator.add_issue(REPO, "add() subtracts", "It does.", "watcher")
    h.emulator.commit_files(
        REPO, BRANCH, {"calc.py": FIXED, "test_negative.py": NEGATIVE_TEST}, "Fix #1"
    )
    return h.emulator.add_pull(
        REPO, BRANCH, "Fix #1: add() subtracts", f"Fixed.\n\nFixes #{issue}", "qwen-fix[bot]"
    )


def review_script() -> list[str]:
    summary = "Added docstrings to add and mul, and a test for zero."
    return [
        call("str_replace_editor", command="str_replace", path="calc.py",
             old_str="def add(a, b):\n", new_str='def add(a, b):\n    """Sum."""\n'),
        call("str_replace_editor", command="str_replace", path="calc.py",
             old_str="def mul(a, b):\n", new_str='def mul(a, b):\n    """Product."""\n'),
        call("str_replace_editor", command="insert", path="test_negative.py", insert_line="5",
             new_str="\n\ndef test_zero():\n    assert add(0, 0) == 0\n"),
        call("run_tests"),
        call("submit", summary=summary),
        call("submit", summary=summary),
    ]  # fmt: skip


def test_a_review_with_three_comments_becomes_one_commit_and_three_replies(
    make_harness: MakeHarness,
) -> None:
    h = make_harness(review_script())
    pull = open_pull_request(h)
    head_before = h.emulator.branches(REPO)[BRANCH]
    review = h.emulator.add_review(REPO, pull, "maintainer", "", comments=[
        {"path": "calc.py", "line": 2, "body": "@qwen-fix give `add` a docstring"},
        {"path": "calc.py", "line": 5, "body": "`mul` too, @qwen-fix."},
        {"path": "test_negative.py", "line": 5, "body": "@qwen-fix also test zero"},
    ])  # fmt: skip
    comments = [
        c for c in h.emulator.review_comments(REPO, pull) if c.get("in_reply_to_id") is None
    ]
    assert len(comments) == 3
    for comment in comments:
        delivery = h.send("pull_request_review_comment", "created", sender="maintainer",
                          pull=pull, comment=comment["id"])  # fmt: skip
        assert delivery["status_code"] == 202, delivery
    submitted = h.send("pull_request_review", "submitted", sender="maintainer", pull=pull,
                       review=review)  # fmt: skip
    assert submitted["status_code"] == 200  # its body does not mention the app

    h.tracking_says(pull, "Pushed")
    assert h.model.remaining == 0 and h.model.failures == []
    head_after = h.emulator.branches(REPO)[BRANCH]
    assert h.emulator.git_log(REPO, head_after)[1] == "Fix #1"  # exactly one new commit
    assert head_after != head_before
    calc = h.emulator.file_at(REPO, BRANCH, "calc.py") or ""
    assert '"""Sum."""' in calc and '"""Product."""' in calc
    assert "def test_zero" in (h.emulator.file_at(REPO, BRANCH, "test_negative.py") or "")

    replies = [c for c in h.emulator.review_comments(REPO, pull) if c.get("in_reply_to_id")]
    assert sorted(r["in_reply_to_id"] for r in replies) == sorted(c["id"] for c in comments)
    assert all(f"Done in {head_after[:7]}" in r["body"] for r in replies)
    assert all(thread["resolved"] for thread in h.emulator.review_threads(REPO, pull))
    checks = [c for c in h.emulator.check_runs(REPO) if c["head_sha"] == head_after]
    assert [c["conclusion"] for c in checks] == ["success"]
    # The agent saw each comment with its file, line and diff hunk.
    task = h.model.requests[0]["messages"][1]["content"]
    assert "On `calc.py` line 2:" in task
    assert "On `test_negative.py` line 5:" in task
    assert "```diff" in task
    assert "The original issue #1: add() subtracts" in task


def test_a_conversation_comment_becomes_a_commit_and_a_reply(make_harness: MakeHarness) -> None:
    summary = "Renamed the test."
    h = make_harness([
        call("bash", command="git mv test_negative.py test_signs.py"),
        call("submit", summary=summary),
        call("submit", summary=summary),
    ])  # fmt: skip
    pull = open_pull_request(h)
    h.comment(pull, "@qwen-fix please rename test_negative.py to test_signs.py")
    h.tracking_says(pull, "Pushed")
    assert h.emulator.file_at(REPO, BRANCH, "test_signs.py") == NEGATIVE_TEST
    assert h.emulator.file_at(REPO, BRANCH, "test_negative.py") is None
    replies = [c["body"] for c in h.bot_comments(pull) if "qwen-fix:tracking" not in c["body"]]
    assert len(replies) == 1
    assert replies[0].startswith("> @qwen-fix please rename")
    assert "Done in" in replies[0] and summary in replies[0]
