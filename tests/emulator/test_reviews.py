"""Review comments, replies, reviews and their webhooks, through githubkit."""

from __future__ import annotations

import pytest
from githubkit.exception import RequestFailed

from tests.emulator.conftest import Hub

CHANGED = {"src/app.py": "a = 1\nb = 20\nc = 3\nd = 4\n"}


def open_pull(hub: Hub) -> int:
    hub.emu.commit_files(hub.repo, "qwen-fix/1", CHANGED, "Change b, add d")
    return hub.emu.add_pull(hub.repo, "qwen-fix/1", "Fix b", "Fixes #1", "qwen[bot]")


def test_review_comments_carry_their_place_in_the_diff(hub: Hub) -> None:
    number = open_pull(hub)
    review_id = hub.emu.add_review(
        hub.repo, number, "alice", "Two things",
        [{"path": "src/app.py", "line": 2, "body": "Why 20?"},
         {"path": "src/app.py", "line": 4, "body": "Name d better"}],
        state="CHANGES_REQUESTED",
    )  # fmt: skip
    rest = hub.installed.rest.pulls
    comments = rest.list_review_comments("octo", "hello", number).parsed_data
    assert [c.body for c in comments] == ["Why 20?", "Name d better"]
    first, second = comments
    assert first.diff_hunk == "@@ -1,3 +1,4 @@\n a = 1\n-b = 2\n+b = 20"
    assert (first.position, first.line, first.original_line, first.side) == (3, 2, 2, "RIGHT")
    assert second.diff_hunk.endswith("+d = 4") and second.position == 5
    assert {c.pull_request_review_id for c in comments} == {review_id}
    assert first.commit_id == hub.emu.branches(hub.repo)["qwen-fix/1"]

    one = rest.get_review_comment("octo", "hello", first.id).parsed_data
    assert (one.id, one.user.login) == (first.id, "alice")
    (review,) = rest.list_reviews("octo", "hello", number).parsed_data
    assert (review.id, review.state, review.body) == (review_id, "CHANGES_REQUESTED", "Two things")
    of_review = rest.list_comments_for_review("octo", "hello", number, review_id).parsed_data
    assert [c.id for c in of_review] == [first.id, second.id]


def test_a_reply_joins_the_thread_as_its_own_review(hub: Hub) -> None:
    number = open_pull(hub)
    root = hub.emu.add_review_comment(hub.repo, number, "alice", "src/app.py", 2, "Why 20?")
    rest = hub.installed.rest
    reply = rest.pulls.create_reply_for_review_comment(
        "octo", "hello", number, root, body="Because the test says so."
    ).parsed_data
    assert (reply.in_reply_to_id, reply.path, reply.line) == (root, "src/app.py", 2)
    assert reply.user.login == f"app-{hub.app_id}[bot]"
    rest.reactions.create_for_pull_request_review_comment("octo", "hello", root, content="eyes")

    listed = hub.emu.review_comments(hub.repo, number)
    assert [(c["id"], c.get("in_reply_to_id")) for c in listed] == [(root, None), (reply.id, root)]
    assert listed[0]["reactions"]["eyes"] == 1
    reviews = hub.emu.reviews(hub.repo, number)
    assert len(reviews) == 2, "the root's single-comment review and the reply's"
    assert reply.pull_request_review_id == reviews[1]["id"]
    (thread,) = hub.emu.review_threads(hub.repo, number)
    assert (thread["comments"], thread["resolved"]) == ([root, reply.id], False)

    with pytest.raises(RequestFailed) as elsewhere:
        rest.pulls.create_reply_for_review_comment("octo", "hello", number, 999999, body="x")
    assert elsewhere.value.response.status_code == 404


def test_context_lines_take_comments_but_lines_outside_the_diff_do_not(hub: Hub) -> None:
    number = open_pull(hub)
    context = hub.emu.add_review_comment(hub.repo, number, "alice", "src/app.py", 1, "context")
    assert hub.emu.review_comments(hub.repo, number)[0]["id"] == context
    with pytest.raises(ValueError, match="part of the diff"):
        hub.emu.add_review_comment(hub.repo, number, "alice", "src/app.py", 40, "beyond the end")
    with pytest.raises(ValueError, match="part of the diff"):
        hub.emu.add_review_comment(hub.repo, number, "alice", "README.md", 1, "untouched")


def test_webhooks_of_reviews_match_the_state(hub: Hub) -> None:
    number = open_pull(hub)
    review_id = hub.emu.add_review(
        hub.repo, number, "alice", "", [{"path": "src/app.py", "line": 2, "body": "Why 20?"}]
    )
    (comment_id,) = hub.emu.review_threads(hub.repo, number)[0]["comments"]
    created = hub.emu.webhook(
        "pull_request_review_comment", "created", repo=hub.repo, sender="alice", comment=comment_id
    )
    assert created["comment"] == hub.emu.review_comments(hub.repo, number)[0]
    assert created["pull_request"]["number"] == number
    assert created["pull_request"]["head"]["ref"] == "qwen-fix/1"
    assert created["installation"]["id"] == hub.installation_id

    submitted = hub.emu.webhook(
        "pull_request_review", "submitted", repo=hub.repo, sender="alice", review=review_id
    )
    assert submitted["review"] == hub.emu.reviews(hub.repo, number)[0]
    assert submitted["pull_request"]["number"] == number

    issue_comment = hub.emu.add_comment(hub.repo, number, "@qwen-fix also add tests", "alice")
    on_pull = hub.emu.webhook(
        "issue_comment", "created", repo=hub.repo, sender="alice", issue=number,
        comment=issue_comment,
    )  # fmt: skip
    assert on_pull["issue"]["number"] == number
    assert on_pull["issue"]["pull_request"]["url"].endswith(f"/pulls/{number}")
    assert on_pull["comment"]["body"] == "@qwen-fix also add tests"
