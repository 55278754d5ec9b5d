"""Routing of comments, reviews and cancellations, over octokit's real example payloads."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from bot.routing import (
    Cancel,
    FollowUp,
    Ignore,
    Rules,
    StatusRequest,
    Target,
    Trigger,
    needs_write_permission,
    route,
)
from tests.fixtures import webhook_examples

RULES = Rules(trigger_label="qwen-fix", names=("qwen-fix", "acme-fixer"), branch_prefix="qwen-fix/")
INSTALLATION = {"id": 77, "node_id": "x"}


def example(event: str, action: str) -> dict[str, Any]:
    payload = copy.deepcopy(next(e for e in webhook_examples(event) if e["action"] == action))
    payload["installation"] = INSTALLATION
    payload["sender"]["type"] = "User"
    return payload


def issue_comment(body: str, *, on_pull: bool = False, author_type: str = "User") -> dict[str, Any]:
    payload = example("issue_comment", "created")
    payload["comment"]["body"] = body
    payload["comment"]["user"]["type"] = author_type
    payload["issue"]["state"] = "open"
    if on_pull:
        payload["issue"]["pull_request"] = {"url": "http://x/pulls/1"}
    else:
        payload["issue"].pop("pull_request", None)
    return payload


def target(payload: dict[str, Any], number: int, comment_id: int | None = None,
           kind: str = "issue") -> Target:  # fmt: skip
    return Target(77, payload["repository"]["full_name"], number, payload["sender"]["login"],
                  comment_id, kind)  # type: ignore[arg-type]  # fmt: skip


@pytest.mark.parametrize(
    ("body", "mode", "instruction"),
    [
        ("/qwen-fix", "fix", ""),
        ("/qwen-fix plan", "plan", ""),
        ("@qwen-fix ask where is the parser?", "ask", "where is the parser?"),
        ("@acme-fixer keep the API", "fix", "keep the API"),
    ],
)
def test_commands_on_an_issue_trigger_work(body: str, mode: str, instruction: str) -> None:
    payload = issue_comment(body)
    decision = route("issue_comment", payload, RULES)
    number, comment = payload["issue"]["number"], payload["comment"]["id"]
    assert decision == Trigger(target(payload, number, comment), mode, instruction)  # type: ignore[arg-type]
    assert needs_write_permission(decision)


def test_retry_stop_and_status_on_an_issue() -> None:
    retry = route("issue_comment", issue_comment("/qwen-fix retry"), RULES)
    assert isinstance(retry, Trigger) and retry.retry
    stop = route("issue_comment", issue_comment("/qwen-fix stop"), RULES)
    assert isinstance(stop, Cancel) and stop.needs_permission and "asked to stop" in stop.reason
    status = route("issue_comment", issue_comment("/qwen-fix status"), RULES)
    assert isinstance(status, StatusRequest) and needs_write_permission(status)


def test_a_mention_inside_an_issue_comment_is_not_a_command() -> None:
    decision = route("issue_comment", issue_comment("thanks @qwen-fix!"), RULES)
    assert decision == Ignore("the comment does not address qwen-fix")


def test_comments_by_bots_are_ignored_including_the_apps_own() -> None:
    decision = route("issue_comment", issue_comment("/qwen-fix", author_type="Bot"), RULES)
    assert isinstance(decision, Ignore) and "bot" in decision.reason


def test_pull_request_conversation_mentions_are_follow_ups() -> None:
    payload = issue_comment("LGTM but @qwen-fix rename `x` to `count`", on_pull=True)
    decision = route("issue_comment", payload, RULES)
    assert isinstance(decision, FollowUp)
    assert decision.source == "conversation" and decision.mode == "fix"
    assert decision.instruction == "LGTM but @qwen-fix rename `x` to `count`"
    assert decision.target.comment_id == payload["comment"]["id"]
    plan = route("issue_comment", issue_comment("/qwen-fix ask why?", on_pull=True), RULES)
    assert isinstance(plan, FollowUp) and plan.mode == "ask"


def test_commands_on_closed_issues_other_than_stop_and_status_are_ignored() -> None:
    payload = issue_comment("/qwen-fix")
    payload["issue"]["state"] = "closed"
    assert isinstance(route("issue_comment", payload, RULES), Ignore)
    payload["comment"]["body"] = "/qwen-fix status"
    assert isinstance(route("issue_comment", payload, RULES), StatusRequest)


def review_comment(
    body: str, head: str = "qwen-fix/issue-1", author: str = "octocat"
) -> dict[str, Any]:
    payload = example("pull_request_review_comment", "created")
    payload["comment"]["body"] = body
    payload["comment"]["user"]["type"] = "User"
    payload["pull_request"]["head"]["ref"] = head
    payload["pull_request"]["state"] = "open"
    payload["pull_request"]["user"]["login"] = author
    return payload


def test_review_comments_mentioning_the_app_on_its_pull_requests_are_follow_ups() -> None:
    payload = review_comment("@qwen-fix handle None here")
    decision = route("pull_request_review_comment", payload, RULES)
    assert isinstance(decision, FollowUp)
    assert decision.source == "review_comment"
    assert decision.review_id == payload["comment"]["pull_request_review_id"]
    assert decision.target.comment_kind == "review"
    assert decision.target.number == payload["pull_request"]["number"]


def test_review_comments_on_other_pull_requests_go_to_the_worker_like_conversations() -> None:
    """The worker decides whether it may push there (fork, default or protected branch, the
    repository's `follow_ups`), and answers in the thread when it may not."""
    other_branch = review_comment("@qwen-fix handle None", head="feature/x", author="alice")
    assert isinstance(route("pull_request_review_comment", other_branch, RULES), FollowUp)
    silent = review_comment("handle None here")
    assert isinstance(route("pull_request_review_comment", silent, RULES), Ignore)


def test_a_pull_request_opened_by_the_app_is_its_own_whatever_the_branch() -> None:
    payload = review_comment("@qwen-fix rename", head="bots/issue-1", author="acme-fixer[bot]")
    assert isinstance(route("pull_request_review_comment", payload, RULES), FollowUp)


def test_a_review_body_mentioning_the_app_is_one_follow_up_for_the_review() -> None:
    payload = example("pull_request_review", "submitted")
    payload["review"]["body"] = "A few things. @qwen-fix see my comments"
    payload["review"]["user"]["type"] = "User"
    payload["pull_request"]["head"]["ref"] = "qwen-fix/issue-3"
    payload["pull_request"]["state"] = "open"
    decision = route("pull_request_review", payload, RULES)
    assert isinstance(decision, FollowUp)
    assert (decision.source, decision.review_id) == ("review", payload["review"]["id"])
    assert decision.target.comment_id is None


def test_unlabeling_closing_and_closing_the_pull_request_cancel() -> None:
    unlabeled = example("issues", "unlabeled")
    unlabeled["label"]["name"] = "qwen-fix"
    decision = route("issues", unlabeled, RULES)
    assert isinstance(decision, Cancel) and decision.reason == "the label was removed"
    assert not needs_write_permission(decision)
    other = example("issues", "unlabeled")
    other["label"]["name"] = "bug"
    assert isinstance(route("issues", other, RULES), Ignore)
    closing = example("issues", "opened") | {"action": "closed"}
    closed = route("issues", closing, RULES)
    assert isinstance(closed, Cancel) and closed.reason == "the issue was closed"
    pull = example("pull_request", "closed")
    pull["pull_request"]["head"]["ref"] = "qwen-fix/issue-9"
    closed_pull = route("pull_request", pull, RULES)
    assert isinstance(closed_pull, Cancel)
    assert closed_pull.target.number == pull["pull_request"]["number"]
    pull["pull_request"]["head"]["ref"] = "someone/else"
    assert isinstance(route("pull_request", pull, RULES), Ignore)


def test_the_label_on_a_pull_request_is_not_a_trigger() -> None:
    payload = example("issues", "labeled")
    payload["label"]["name"] = "qwen-fix"
    payload["issue"]["state"] = "open"
    payload["issue"]["pull_request"] = {"url": "http://x"}
    decision = route("issues", payload, RULES)
    assert isinstance(decision, Ignore) and "pull request" in decision.reason
