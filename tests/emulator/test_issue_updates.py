"""Issue labels, state changes and comment size limits, through githubkit."""

from __future__ import annotations

import httpx
import pytest
from githubkit.exception import RequestFailed

from tests.emulator.conftest import Hub

MAX_BODY = 65536


def test_labels_are_listed_and_removed(hub: Hub) -> None:
    number = hub.emu.add_issue(hub.repo, "Crash", "It crashes", "alice", ("qwen-fix", "bug"))
    issues = hub.installed.rest.issues
    listed = issues.list_labels_on_issue("octo", "hello", number).parsed_data
    assert [label.name for label in listed] == ["qwen-fix", "bug"]
    left = issues.remove_label("octo", "hello", number, "qwen-fix").parsed_data
    assert [label.name for label in left] == ["bug"]
    with pytest.raises(RequestFailed) as gone:
        issues.remove_label("octo", "hello", number, "qwen-fix")
    assert gone.value.response.status_code == 404
    assert [label["name"] for label in hub.emu.issue(hub.repo, number)["labels"]] == ["bug"]


def test_an_issue_is_closed_and_reopened(hub: Hub) -> None:
    number = hub.emu.add_issue(hub.repo, "Crash", "It crashes", "alice")
    issues = hub.installed.rest.issues
    closed = issues.update(
        "octo", "hello", number, state="closed", state_reason="not_planned", title="Crash (dup)"
    ).parsed_data
    assert (closed.state, closed.state_reason, closed.title) == (
        "closed",
        "not_planned",
        "Crash (dup)",
    )
    assert closed.closed_at is not None
    reopened = issues.update("octo", "hello", number, state="open").parsed_data
    assert (reopened.state, reopened.state_reason, reopened.closed_at) == ("open", "reopened", None)
    assert hub.emu.issue(hub.repo, number)["body"] == "It crashes"


def test_comments_over_65536_characters_are_refused(hub: Hub) -> None:
    number = hub.emu.add_issue(hub.repo, "Crash", None, "alice")
    issues = hub.installed.rest.issues
    fits = issues.create_comment("octo", "hello", number, body="x" * MAX_BODY).parsed_data
    assert len(fits.body or "") == MAX_BODY
    too_long = httpx.post(
        f"{hub.emu.api_url}/repos/octo/hello/issues/{number}/comments",
        headers={"Authorization": f"token {hub.emu.installation_token(hub.installation_id)}"},
        json={"body": "x" * (MAX_BODY + 1)},
    )
    assert too_long.status_code == 422
    (error,) = too_long.json()["errors"]
    assert error["message"] == "body is too long (maximum is 65536 characters)"
    assert len(hub.emu.comments(hub.repo, number)) == 1
