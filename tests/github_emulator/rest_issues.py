"""REST routes on issues: the issue, its comments, reactions and labels."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from tests.github_emulator.auth import require_permission
from tests.github_emulator.content_limit import count_creation
from tests.github_emulator.errors import GitHubError, not_found, validation_failed
from tests.github_emulator.payloads import REACTIONS
from tests.github_emulator.routing import (
    RestRoute,
    int_param,
    json_body,
    json_object,
    paginate,
    payloads_of,
    repo_context,
    respond,
    world_of,
)
from tests.github_emulator.state import Comment, Issue, Label, Reaction, Repo, Token, User, now

DEFAULT_LABEL_COLOR = "ededed"
MAX_BODY = 65536
STATE_REASONS = {"closed": ("completed", "not_planned"), "open": ("reopened",)}


def issue_of(request: Request, repo: Repo) -> Issue:
    issue = repo.issues.get(int_param(request, "issue_number"))
    if issue is None:
        raise not_found()
    return issue


def comment_of(request: Request, repo: Repo) -> Comment:
    comment = repo.comments.get(int_param(request, "comment_id"))
    if comment is None:
        raise not_found()
    return comment


def bot_user(request: Request, token: Token) -> User:
    """The `<slug>[bot]` user that installation tokens act as."""
    return world_of(request).user(f"{token.installation.app.slug}[bot]", type="Bot")


def require_issue_write(token: Token, issue: Issue) -> None:
    # Pull request conversations accept either permission, as on GitHub.
    if issue.pull is not None and token.installation.permissions.get("pull_requests") == "write":
        return
    require_permission(token, "issues")


async def get_issue(request: Request) -> Response:
    _, repo = repo_context(request)
    return respond(payloads_of(request).issue(repo, issue_of(request, repo)))


async def update_issue(request: Request) -> Response:
    token, repo = repo_context(request)
    issue = issue_of(request, repo)
    require_issue_write(token, issue)
    body = await json_object(request)
    title = body.get("title", issue.title)
    if not isinstance(title, str) or not title:
        raise validation_failed("Issue", "title")
    text = body.get("body", issue.body)
    if text is not None and not isinstance(text, str):
        raise validation_failed("Issue", "body")
    check_length("Issue", text)
    state = body.get("state", issue.state)
    if state not in STATE_REASONS:
        raise validation_failed("Issue", "state")
    reason = body.get("state_reason")
    if reason is not None and reason not in STATE_REASONS[state]:
        raise validation_failed("Issue", "state_reason")
    issue.title, issue.body = title, text
    if state != issue.state:
        issue.state = state
        issue.closed_at = now() if state == "closed" else None
        issue.state_reason = reason or STATE_REASONS[state][0]
    issue.updated_at = now()
    return respond(payloads_of(request).issue(repo, issue))


async def list_labels(request: Request) -> Response:
    _, repo = repo_context(request)
    issue = issue_of(request, repo)
    page, headers = paginate(request, issue.labels)
    payloads = payloads_of(request)
    return respond([payloads.label(repo, label) for label in page], headers=headers)


async def list_comments(request: Request) -> Response:
    _, repo = repo_context(request)
    issue = issue_of(request, repo)
    comments = [c for c in repo.comments.values() if c.issue_number == issue.number]
    page, headers = paginate(request, comments)
    payloads = payloads_of(request)
    return respond([payloads.comment(repo, c) for c in page], headers=headers)


async def create_comment(request: Request) -> Response:
    token, repo = repo_context(request)
    issue = issue_of(request, repo)
    require_issue_write(token, issue)
    text = comment_text(await json_object(request))
    world = world_of(request)
    count_creation(world)
    comment = Comment(world.new_id(), issue.number, bot_user(request, token), text)
    with world.lock:
        repo.comments[comment.id] = comment
    location = f"{payloads_of(request).api}/repos/{repo.full_name}/issues/comments/{comment.id}"
    return respond(
        payloads_of(request).comment(repo, comment), status=201, headers={"Location": location}
    )


def comment_text(body: dict[str, object], resource: str = "IssueComment") -> str:
    text = body.get("body")
    if not isinstance(text, str):
        raise validation_failed(resource, "body", "missing_field")
    check_length(resource, text)
    return text


def check_length(resource: str, text: str | None) -> None:
    """GitHub's 422 for a comment or description over 65536 characters."""
    if text is not None and len(text) > MAX_BODY:
        message = f"body is too long (maximum is {MAX_BODY} characters)"
        errors = [{"resource": resource, "code": "custom", "field": "body", "message": message}]
        raise GitHubError(422, "Validation Failed", errors)


async def get_comment(request: Request) -> Response:
    _, repo = repo_context(request)
    return respond(payloads_of(request).comment(repo, comment_of(request, repo)))


async def update_comment(request: Request) -> Response:
    token, repo = repo_context(request)
    comment = comment_of(request, repo)
    require_issue_write(token, repo.issues[comment.issue_number])
    comment.body = comment_text(await json_object(request))
    comment.updated_at = now()
    return respond(payloads_of(request).comment(repo, comment))


async def delete_comment(request: Request) -> Response:
    token, repo = repo_context(request)
    comment = comment_of(request, repo)
    require_issue_write(token, repo.issues[comment.issue_number])
    with world_of(request).lock:
        del repo.comments[comment.id]
    return Response(status_code=204)


async def react_to_issue(request: Request) -> Response:
    token, repo = repo_context(request)
    issue = issue_of(request, repo)
    require_issue_write(token, issue)
    return await react(request, token, issue.reactions)


async def react_to_comment(request: Request) -> Response:
    token, repo = repo_context(request)
    comment = comment_of(request, repo)
    require_issue_write(token, repo.issues[comment.issue_number])
    return await react(request, token, comment.reactions)


async def react(request: Request, token: Token, reactions: list[Reaction]) -> Response:
    """201 with a new reaction; 200 with the existing one when this user already reacted so."""
    content = (await json_object(request)).get("content")
    if content not in REACTIONS:
        raise validation_failed("Reaction", "content")
    user = bot_user(request, token)
    for reaction in reactions:
        if reaction.user is user and reaction.content == content:
            return respond(payloads_of(request).reaction(reaction))
    reaction = Reaction(world_of(request).new_id(), user, str(content))
    reactions.append(reaction)
    return respond(payloads_of(request).reaction(reaction), status=201)


async def add_labels(request: Request) -> Response:
    token, repo = repo_context(request)
    issue = issue_of(request, repo)
    require_issue_write(token, issue)
    for name in label_names(await json_body(request)):
        label = repo_label(request, repo, name)
        if label not in issue.labels:
            issue.labels.append(label)
    issue.updated_at = now()
    payloads = payloads_of(request)
    return respond([payloads.label(repo, label) for label in issue.labels])


def label_names(body: object) -> list[str]:
    """Labels as GitHub takes them: `{"labels": [...]}` or a bare list, of names or objects."""
    labels = body.get("labels") if isinstance(body, dict) else body
    if not isinstance(labels, list) or not labels:
        raise validation_failed("Label", "labels", "missing_field")
    names = [label.get("name") if isinstance(label, dict) else label for label in labels]
    if not all(isinstance(name, str) and name for name in names):
        raise validation_failed("Label", "name")
    return [str(name) for name in names]


def repo_label(request: Request, repo: Repo, name: str) -> Label:
    """The repo's label of that name, created as GitHub does when an issue is given a new one."""
    with world_of(request).lock:
        for label in repo.labels.values():
            if label.name.lower() == name.lower():
                return label
        label = Label(world_of(request).new_id(), name, DEFAULT_LABEL_COLOR, None)
        repo.labels[name] = label
        return label


async def remove_label(request: Request) -> Response:
    token, repo = repo_context(request)
    issue = issue_of(request, repo)
    require_issue_write(token, issue)
    name = request.path_params["name"]
    kept = [label for label in issue.labels if label.name.lower() != name.lower()]
    if len(kept) == len(issue.labels):
        raise GitHubError(404, "Label does not exist")
    issue.labels = kept
    issue.updated_at = now()
    payloads = payloads_of(request)
    return respond([payloads.label(repo, label) for label in issue.labels])


ISSUE = "/repos/{owner}/{repo}/issues/{issue_number}"
COMMENT = "/repos/{owner}/{repo}/issues/comments/{comment_id}"
WRITE = {401, 403, 404}

routes = [
    RestRoute("GET", ISSUE, get_issue, {200, 401, 404}),
    RestRoute("PATCH", ISSUE, update_issue, {200, 400, 422, *WRITE}),
    RestRoute("GET", f"{ISSUE}/labels", list_labels, {200, 401, 404}),
    RestRoute("GET", f"{ISSUE}/comments", list_comments, {200, 401, 404}),
    RestRoute("POST", f"{ISSUE}/comments", create_comment, {201, 400, 422, *WRITE}),
    RestRoute("GET", COMMENT, get_comment, {200, 401, 404}),
    RestRoute("PATCH", COMMENT, update_comment, {200, 400, 422, *WRITE}),
    RestRoute("DELETE", COMMENT, delete_comment, {204, *WRITE}),
    RestRoute("POST", f"{ISSUE}/reactions", react_to_issue, {200, 201, 400, 422, *WRITE}),
    RestRoute("POST", f"{COMMENT}/reactions", react_to_comment, {200, 201, 400, 422, *WRITE}),
    RestRoute("POST", f"{ISSUE}/labels", add_labels, {200, 400, 422, *WRITE}),
    RestRoute("DELETE", f"{ISSUE}/labels/{{name}}", remove_label, {200, *WRITE}),
]
