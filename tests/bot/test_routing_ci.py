"""CI events and `fix-ci`: which failed suites and runs become a CI job, over octokit's payloads."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from bot.commands import parse_command
from bot.routing import (
    CiFailed,
    CiFixRequest,
    FollowUp,
    Ignore,
    MalformedPayload,
    Rules,
    Target,
    route,
)
from tests.fixtures import webhook_examples

RULES = Rules()
SHA = "ec26c3e57ca3a959ca5aad62de7213c562f8c821"


def completed(event: str, *, conclusion: str = "failure", branch: str = "qwen-fix/issue-7") -> Any:
    """octokit's first `completed` example of the event, failed, on a pull request's head."""
    example = next(e for e in webhook_examples(event) if e["action"] == "completed")
    payload = copy.deepcopy(example)
    thing = payload[event]
    thing.update(conclusion=conclusion, head_sha=SHA, head_branch=branch)
    pull = {"number": 9, "head": {"ref": branch, "sha": SHA}, "base": {"ref": "main", "sha": SHA}}
    thing["pull_requests"] = [pull]
    payload.setdefault("installation", {"id": 4242, "node_id": "x"})
    return payload


@pytest.mark.parametrize("event", ["check_suite", "workflow_run"])
@pytest.mark.parametrize("conclusion", ["failure", "timed_out", "action_required"])
def test_a_failed_suite_or_run_on_a_qwen_fix_pull_request_is_a_ci_job(
    event: str, conclusion: str
) -> None:
    payload = completed(event, conclusion=conclusion)
    decision = route(event, payload, RULES)
    target = Target(4242, payload["repository"]["full_name"], 9, payload["sender"]["login"])
    assert decision == CiFailed(target, SHA)


@pytest.mark.parametrize("event", ["check_suite", "workflow_run"])
@pytest.mark.parametrize(
    ("change", "reason_part"),
    [
        (lambda p, e: p[e].update(conclusion="success"), "concluded success"),
        (lambda p, e: p[e].update(conclusion="cancelled"), "concluded cancelled"),
        (lambda p, e: p[e].update(conclusion=None), "concluded nothing yet"),
        (lambda p, e: p[e].update(pull_requests=[]), "no qwen-fix pull request"),
        # A person's pull request: not our branch prefix.
        (
            lambda p, e: p[e]["pull_requests"][0]["head"].update(ref="feature"),
            "no qwen-fix pull request",
        ),
        # An older commit of the pull request: its head has moved on.
        (
            lambda p, e: p[e]["pull_requests"][0]["head"].update(sha="f" * 40),
            "no qwen-fix pull request",
        ),
        (lambda p, e: p.pop("installation"), "no installation"),
    ],
)
def test_ci_that_asks_nothing_of_the_app_is_ignored_with_a_reason(
    event: str, change: Any, reason_part: str
) -> None:
    payload = completed(event)
    change(payload, event)
    decision = route(event, payload, RULES)
    assert isinstance(decision, Ignore)
    assert reason_part in decision.reason


def test_the_apps_own_check_suite_is_never_a_trigger() -> None:
    payload = completed("check_suite")
    payload["check_suite"]["app"]["slug"] = "qwen-fix"
    decision = route("check_suite", payload, RULES)
    assert decision == Ignore("the app's own check suite")


def test_a_repository_prefix_is_honoured_when_the_rules_carry_it() -> None:
    payload = completed("workflow_run", branch="bots/fix-7")
    assert isinstance(route("workflow_run", payload, RULES), Ignore)
    assert isinstance(route("workflow_run", payload, Rules(branch_prefix="bots/")), CiFailed)


@pytest.mark.parametrize("event", ["check_suite", "workflow_run"])
def test_a_ci_payload_without_its_head_commit_is_malformed(event: str) -> None:
    payload = completed(event)
    del payload[event]["head_sha"]
    with pytest.raises(MalformedPayload, match="head_sha"):
        route(event, payload, RULES)


def comment_on_pull(body: str) -> dict[str, Any]:
    example = next(e for e in webhook_examples("issue_comment") if e["action"] == "created")
    payload = copy.deepcopy(example)
    payload["issue"]["pull_request"] = {"url": "https://example.invalid/pulls/9"}
    payload["issue"].update(number=9, state="open")
    payload["comment"].update(body=body)
    payload["comment"]["user"]["type"] = "User"
    payload.setdefault("installation", {"id": 4242, "node_id": "x"})
    return payload


def test_fix_ci_on_a_pull_request_is_a_request_and_elsewhere_is_ignored() -> None:
    decision = route("issue_comment", comment_on_pull("/qwen-fix fix-ci"), RULES)
    assert isinstance(decision, CiFixRequest)
    assert decision.target.number == 9
    on_issue = comment_on_pull("/qwen-fix fix-ci")
    on_issue["issue"].pop("pull_request")
    assert route("issue_comment", on_issue, RULES) == Ignore("fix-ci works on pull requests")


def test_a_verb_with_a_hyphen_is_read_whole() -> None:
    command = parse_command("/qwen-fix fix-ci please", "qwen-fix")
    assert command is not None and (command.verb, command.text) == ("fix-ci", "please")
    # An unknown hyphenated word is still an instruction, as before.
    command = parse_command("/qwen-fix fix-it now", "qwen-fix")
    assert command is not None and (command.verb, command.text) == ("fix", "fix-it now")
    decision = route("issue_comment", comment_on_pull("@qwen-fix fix-it now"), RULES)
    assert isinstance(decision, FollowUp) and decision.instruction == "fix-it now"
