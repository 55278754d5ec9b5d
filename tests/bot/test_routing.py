"""The event → decision functions, over real octokit payloads and their edge cases."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from bot.routing import Ignore, MalformedPayload, Rules, Target, Trigger, route
from tests.fixtures import webhook_examples

LABEL = "qwen-fix"
RULES = Rules(trigger_label=LABEL)


def labeled_example() -> dict[str, Any]:
    example = next(e for e in webhook_examples("issues") if e["action"] == "labeled")
    payload = copy.deepcopy(example)
    payload["label"]["name"] = LABEL
    payload["issue"]["state"] = "open"
    payload["sender"]["type"] = "User"
    payload.setdefault("installation", {"id": 4242, "node_id": "x"})
    return payload


def test_the_trigger_label_by_a_user_starts_a_fix() -> None:
    payload = labeled_example()
    decision = route("issues", payload, RULES)
    assert decision == Trigger(
        Target(
            installation_id=payload["installation"]["id"],
            repository=payload["repository"]["full_name"],
            number=payload["issue"]["number"],
            sender=payload["sender"]["login"],
        ),
        mode="fix",
    )


def test_the_label_name_matches_without_regard_to_case() -> None:
    payload = labeled_example()
    payload["label"]["name"] = "Qwen-Fix"
    assert isinstance(route("issues", payload, RULES), Trigger)


@pytest.mark.parametrize(
    ("change", "reason_part"),
    [
        (lambda p: p["label"].update(name="bug"), "is not the trigger label"),
        (lambda p: p["sender"].update(type="Bot"), "is a bot"),
        (lambda p: p["issue"].update(state="closed"), "is closed"),
        (lambda p: p.pop("installation"), "no installation"),
    ],
)
def test_labels_that_do_not_ask_for_work_are_ignored_with_a_reason(
    change: Any, reason_part: str
) -> None:
    payload = labeled_example()
    change(payload)
    decision = route("issues", payload, RULES)
    assert isinstance(decision, Ignore)
    assert reason_part in decision.reason


def test_events_the_app_does_not_handle_are_ignored() -> None:
    decision = route("star", {"action": "created"}, RULES)
    assert decision == Ignore("star.created is not an event qwen-fix acts on")
    assert route("ping", {"zen": "Keep it simple."}, RULES) == Ignore(
        "ping is not an event qwen-fix acts on"
    )


def test_a_labeled_payload_missing_its_issue_is_malformed() -> None:
    payload = labeled_example()
    del payload["issue"]["number"]
    with pytest.raises(MalformedPayload, match=r"issue\.number"):
        route("issues", payload, RULES)


@pytest.mark.parametrize(
    "event",
    [
        "issues",
        "issue_comment",
        "pull_request_review_comment",
        "pull_request_review",
        "pull_request",
        "installation",
        "installation_repositories",
    ],
)
def test_every_octokit_example_routes_without_error(event: str) -> None:
    examples = webhook_examples(event)
    assert examples, f"no octokit examples for {event}"
    for example in examples:
        decision = route(event, example, RULES)
        # No example carries our label, so none may start work.
        assert isinstance(decision, Ignore), example.get("action")
