"""Which branch a follow-up may push to: every rule of workers/push_target.py, exhaustively.

The end-to-end proof (a fork's pull request whose branch is called `main`) is in
tests/security/test_follow_up_targets.py; these pin the decision itself."""

from __future__ import annotations

from dataclasses import replace

import pytest

from workers.push_target import (
    PullFacts,
    PushPolicy,
    Refusal,
    follow_up_branch,
    issue_branch_refusal,
)

OURS = PullFacts(
    number=7,
    repository="octo-org/calc",
    head_repository="octo-org/calc",
    head_ref="qwen-fix/issue-1",
    author="qwen-fix[bot]",
    default_branch="main",
    protected=False,
)
POLICY = PushPolicy(bot_login="qwen-fix[bot]", branch_prefix="qwen-fix/")


def refused(pull: PullFacts, policy: PushPolicy = POLICY) -> str:
    decision = follow_up_branch(pull, policy, "qwen-fix")
    assert isinstance(decision, Refusal), decision
    return decision.reason


def test_the_apps_own_pull_request_gets_its_head_branch() -> None:
    assert follow_up_branch(OURS, POLICY, "qwen-fix") == "qwen-fix/issue-1"
    # Opened by the app under another prefix (a repository may change `branch_prefix`).
    other_prefix = replace(OURS, head_ref="bots/issue-1")
    assert follow_up_branch(other_prefix, POLICY, "qwen-fix") == "bots/issue-1"


@pytest.mark.parametrize("head", ["main", "qwen-fix/issue-1", "feature"])
def test_a_forks_branch_is_never_pushed_whatever_its_name(head: str) -> None:
    fork = replace(OURS, head_repository="mallory/calc", head_ref=head, author="mallory")
    for policy in (POLICY, replace(POLICY, people_pull_requests=True)):
        assert "lives in `mallory/calc`" in refused(fork, policy)
    assert "a fork that was deleted" in refused(replace(fork, head_repository=None))


def test_the_default_branch_and_protected_branches_are_never_pushed() -> None:
    anyone = replace(POLICY, people_pull_requests=True)
    assert "default branch" in refused(replace(OURS, head_ref="main"), anyone)
    assert "is protected" in refused(replace(OURS, protected=True), anyone)


def test_peoples_pull_requests_need_the_repositorys_consent() -> None:
    human = replace(OURS, head_ref="fix-typo", author="alice")
    assert "follow_ups: any" in refused(human)
    anyone = replace(POLICY, people_pull_requests=True)
    assert follow_up_branch(human, anyone, "qwen-fix") == "fix-typo"


def test_the_fork_check_ignores_case_as_github_does() -> None:
    assert follow_up_branch(replace(OURS, head_repository="Octo-Org/Calc"), POLICY, "x") == (
        "qwen-fix/issue-1"
    )


def test_an_issue_branch_is_refused_when_default_or_protected() -> None:
    assert issue_branch_refusal("qwen-fix/issue-1", "main", protected=False) is None
    default = issue_branch_refusal("main", "main", protected=False)
    assert default is not None and "default branch" in default.reason
    protected = issue_branch_refusal("release/issue-1", "main", protected=True)
    assert protected is not None and "branch_prefix" in protected.reason
