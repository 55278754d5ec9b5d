"""REST routes on pull request reviews and review comments: lists, replies, reactions."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from tests.github_emulator import reviews
from tests.github_emulator.auth import require_permission
from tests.github_emulator.content_limit import count_creation
from tests.github_emulator.errors import not_found
from tests.github_emulator.rest_issues import bot_user, comment_text, react
from tests.github_emulator.rest_pulls import pull_of
from tests.github_emulator.routing import (
    RestRoute,
    int_param,
    json_object,
    paginate,
    payloads_of,
    repo_context,
    respond,
    world_of,
)
from tests.github_emulator.state import Repo, ReviewComment


def review_comment_of(request: Request, repo: Repo) -> ReviewComment:
    comment = repo.review_comments.get(int_param(request, "comment_id"))
    if comment is None:
        raise not_found()
    return comment


async def list_review_comments(request: Request) -> Response:
    _, repo = repo_context(request)
    issue = pull_of(request, repo)
    chosen = [c for c in repo.review_comments.values() if c.pull_number == issue.number]
    chosen.sort(key=lambda c: c.id, reverse=request.query_params.get("direction") == "desc")
    page, headers = paginate(request, chosen)
    payloads = payloads_of(request)
    return respond([payloads.review_comment(repo, c) for c in page], headers=headers)


async def get_review_comment(request: Request) -> Response:
    _, repo = repo_context(request)
    return respond(payloads_of(request).review_comment(repo, review_comment_of(request, repo)))


async def reply_to_review_comment(request: Request) -> Response:
    token, repo = repo_context(request)
    issue = pull_of(request, repo)
    comment = review_comment_of(request, repo)
    if comment.pull_number != issue.number:
        raise not_found()
    require_permission(token, "pull_requests")
    text = comment_text(await json_object(request), "PullRequestReviewComment")
    world = world_of(request)
    count_creation(world)
    reply = reviews.add_reply(world, repo, comment, bot_user(request, token), text)
    location = f"{payloads_of(request).api}/repos/{repo.full_name}/pulls/comments/{reply.id}"
    return respond(
        payloads_of(request).review_comment(repo, reply), status=201, headers={"Location": location}
    )


async def react_to_review_comment(request: Request) -> Response:
    token, repo = repo_context(request)
    comment = review_comment_of(request, repo)
    require_permission(token, "pull_requests")
    return await react(request, token, comment.reactions)


async def list_reviews(request: Request) -> Response:
    _, repo = repo_context(request)
    issue = pull_of(request, repo)
    chosen = sorted(
        (r for r in repo.reviews.values() if r.pull_number == issue.number), key=lambda r: r.id
    )
    page, headers = paginate(request, chosen)
    payloads = payloads_of(request)
    return respond([payloads.review(repo, r) for r in page], headers=headers)


async def list_review_comments_of_review(request: Request) -> Response:
    _, repo = repo_context(request)
    issue = pull_of(request, repo)
    review = repo.reviews.get(int_param(request, "review_id"))
    if review is None or review.pull_number != issue.number:
        raise not_found()
    chosen = sorted(
        (c for c in repo.review_comments.values() if c.review_id == review.id), key=lambda c: c.id
    )
    page, headers = paginate(request, chosen)
    payloads = payloads_of(request)
    return respond([payloads.review_comment(repo, c) for c in page], headers=headers)


PULL = "/repos/{owner}/{repo}/pulls/{pull_number}"
COMMENT = "/repos/{owner}/{repo}/pulls/comments/{comment_id}"
READ = {200, 401, 404}
WRITE = {400, 401, 403, 404, 422}

routes = [
    RestRoute("GET", f"{PULL}/comments", list_review_comments, READ),
    RestRoute("GET", COMMENT, get_review_comment, READ),
    RestRoute(
        "POST", f"{PULL}/comments/{{comment_id}}/replies", reply_to_review_comment, {201, *WRITE}
    ),
    RestRoute("POST", f"{COMMENT}/reactions", react_to_review_comment, {200, 201, *WRITE}),
    RestRoute("GET", f"{PULL}/reviews", list_reviews, READ),
    RestRoute(
        "GET", f"{PULL}/reviews/{{review_id}}/comments", list_review_comments_of_review, READ
    ),
]
