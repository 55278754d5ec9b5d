"""Pull request reviews and their line comments as state: creation, replies and threads."""

from __future__ import annotations

from tests.github_emulator import bare_repos, diff_hunks, pull_refs
from tests.github_emulator.state import Issue, Repo, Review, ReviewComment, User, World

REVIEW_STATES = ("COMMENTED", "APPROVED", "CHANGES_REQUESTED", "DISMISSED", "PENDING")


class LineNotInDiff(ValueError):
    """GitHub refuses a review comment on a line the pull's diff does not show."""


def pull_issue(repo: Repo, number: int) -> Issue:
    issue = repo.issues.get(number)
    if issue is None or issue.pull is None:
        raise KeyError(f"no pull request #{number} in {repo.full_name}")
    return issue


def add_review(world: World, repo: Repo, number: int, user: User, body: str, state: str) -> Review:
    if state not in REVIEW_STATES:
        raise ValueError(f"state must be one of {REVIEW_STATES}")
    head, _ = pull_refs.head_and_base(repo, pull_issue(repo, number))
    review = Review(world.new_id(), number, user, body, state, head)
    with world.lock:
        repo.reviews[review.id] = review
    return review


def add_line_comment(
    world: World,
    repo: Repo,
    review: Review,
    user: User,
    path: str,
    line: int,
    body: str,
    side: str = "RIGHT",
) -> ReviewComment:
    """A new thread on `line` of `path` in the pull's diff (422 when the diff lacks it)."""
    head, base = pull_refs.head_and_base(repo, pull_issue(repo, review.pull_number))
    found = diff_hunks.locate(bare_repos.diff(repo.path, base, head, path), line, side)
    if found is None:
        raise LineNotInDiff(
            f"{path}:{line} ({side}): pull request review thread line must be part of the diff"
        )
    comment = ReviewComment(
        id=world.new_id(),
        pull_number=review.pull_number,
        review_id=review.id,
        user=user,
        body=body,
        path=path,
        line=line,
        side=side,
        diff_hunk=found.diff_hunk,
        position=found.position,
        commit_id=head,
    )
    with world.lock:
        repo.review_comments[comment.id] = comment
    return comment


def add_reply(world: World, repo: Repo, to: ReviewComment, user: User, body: str) -> ReviewComment:
    """A reply in the thread of `to`; as on GitHub, each reply is its own COMMENTED review."""
    root = repo.review_comments[to.thread_root]
    review = add_review(world, repo, root.pull_number, user, "", "COMMENTED")
    reply = ReviewComment(
        id=world.new_id(),
        pull_number=root.pull_number,
        review_id=review.id,
        user=user,
        body=body,
        path=root.path,
        line=root.line,
        side=root.side,
        diff_hunk=root.diff_hunk,
        position=root.position,
        commit_id=review.commit_id,
        in_reply_to=root.id,
    )
    with world.lock:
        repo.review_comments[reply.id] = reply
    return reply


def threads(repo: Repo, number: int) -> list[list[ReviewComment]]:
    """The pull's review threads, oldest first; each is its root comment then its replies."""
    by_root: dict[int, list[ReviewComment]] = {}
    for comment in sorted(repo.review_comments.values(), key=lambda c: c.id):
        if comment.pull_number == number:
            by_root.setdefault(comment.thread_root, []).append(comment)
    return list(by_root.values())
