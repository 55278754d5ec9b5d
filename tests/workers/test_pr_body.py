"""The pull request body and issue comments: what a reviewer reads on GitHub."""

from __future__ import annotations

from workers.pr_body import (
    GITHUB_BODY_LIMIT,
    PlanItem,
    PullRequestContent,
    RunStats,
    Verification,
    clamp,
    pull_request_body,
    pull_request_title,
)


def content(
    tests: Verification, summary: str = "Fixed the off-by-one in `add`."
) -> PullRequestContent:
    return PullRequestContent(
        issue_number=7,
        issue_title="add() is wrong",
        summary=summary,
        plan=[PlanItem("Reproduce", True), PlanItem("Fix add", True), PlanItem("Docs", False)],
        diff_stat=" calc.py | 2 +-\n 1 file changed, 1 insertion(+), 1 deletion(-)\n",
        tests=tests,
        stats=RunStats("Qwen/Qwen3-Coder", 6, 12_000, 9_000, 800, 75.4, "submitted"),
    )


def test_a_passing_run() -> None:
    body = pull_request_body(
        content(Verification("python3 -m pytest -q", True, "3 passed in 0.1s"))
    )
    assert body.startswith("Fixed the off-by-one in `add`.")
    assert "Fixes #7" in body
    assert "- [x] Reproduce\n- [x] Fix add\n- [ ] Docs" in body
    assert "calc.py | 2 +-" in body
    assert "✅ `python3 -m pytest -q` passed." in body
    assert "<details><summary>Test log</summary>\n\n```\n3 passed in 0.1s\n```\n</details>" in body
    assert (
        "6 turns · 12,000 prompt tokens (9,000 cached) · 800 completion tokens · 1 min 15 s" in body
    )
    assert "@qwen-fix" in body


def test_a_failing_run_says_so() -> None:
    body = pull_request_body(content(Verification("make test", False, "FAILED x")))
    assert "❌ `make test` failed" in body
    assert "draft" in body


def test_no_test_command_says_nothing_ran() -> None:
    body = pull_request_body(content(Verification(None, None, "No test command was found.")))
    assert "No test command was found for this repository" in body
    assert "Why there is no test log" in body


def test_a_huge_log_is_cut_in_the_middle_to_fit_githubs_limit() -> None:
    log = "HEAD-LINE\n" + "x" * 200_000 + "\nTAIL-LINE"
    body = pull_request_body(content(Verification("make test", False, log)))
    assert len(body) <= GITHUB_BODY_LIMIT
    assert "HEAD-LINE" in body
    assert "TAIL-LINE" in body
    assert "characters cut" in body


def test_a_log_with_fences_cannot_break_out_of_its_block() -> None:
    body = pull_request_body(content(Verification("make test", True, "```\n# heading\n```")))
    assert "````\n```\n# heading\n```\n````" in body


def test_title_and_clamp() -> None:
    assert pull_request_title(7, "add() is wrong") == "Fix #7: add() is wrong"
    assert len(pull_request_title(7, "x" * 500)) == 256
    assert clamp("short") == "short"
    long = clamp("a" * 40_000 + "b" * 40_000)
    assert len(long) <= GITHUB_BODY_LIMIT
    assert long.startswith("a") and long.endswith("b")


def test_check_run_output_splits_a_long_log_within_githubs_limits() -> None:
    from workers.pr_body import CHECK_OUTPUT_LIMIT, check_run_output

    short = check_run_output(Verification("make test", True, "ok"))
    assert short == ("Tests passed", "✅ `make test` passed.\n\n```\nok\n```", "")
    log = "".join(f"line {n}\n" for n in range(30_000))  # ~300 KB
    title, summary, text = check_run_output(Verification("make test", False, log))
    assert title == "Tests failed"
    assert len(summary) <= CHECK_OUTPUT_LIMIT
    assert len(text) <= CHECK_OUTPUT_LIMIT
    assert "line 0\n" in summary
    assert "line 29999" in text
    assert "characters cut" in summary + text
    medium = "x" * 100_000
    _, summary, text = check_run_output(Verification("make test", False, medium))
    assert summary.count("x") + text.count("x") == 100_000
