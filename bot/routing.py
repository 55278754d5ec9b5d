"""Event → decision: pure functions saying what a webhook asks of the app, or why nothing."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ValidationError

from bot.commands import Command, mentions, parse_command, parse_mention

Mode = Literal["fix", "plan", "ask"]


class MalformedPayload(ValueError):
    """The payload lacks a field the event must have; the receiver answers 400."""


@dataclass(frozen=True, slots=True)
class Rules:
    """What routing needs to know of this installation of the app."""

    trigger_label: str = "qwen-fix"
    names: tuple[str, ...] = ("qwen-fix",)
    """Names the app answers to: `/name …` or `@name …` (the command name and the app's slug)."""
    branch_prefix: str = "qwen-fix/"
    """Pull requests whose head branch starts with this are the app's own."""


@dataclass(frozen=True, slots=True)
class Target:
    """An issue or pull request the app was asked about, and who asked."""

    installation_id: int
    repository: str
    number: int
    sender: str
    comment_id: int | None = None
    """The comment that asked, to react to and reply under; None for a label."""
    comment_kind: Literal["issue", "review"] = "issue"
    """An issue (or PR conversation) comment, or a review comment on a line of a diff."""


@dataclass(frozen=True, slots=True)
class Trigger:
    """Start work on an issue (superseding any running work on it)."""

    target: Target
    mode: Mode = "fix"
    instruction: str = ""
    retry: bool = False
    """Run the last job on this issue again, as it was."""


@dataclass(frozen=True, slots=True)
class FollowUp:
    """Change the app's pull request as a reviewer asks."""

    target: Target
    source: Literal["review_comment", "review", "conversation"]
    instruction: str
    mode: Mode = "fix"
    review_id: int | None = None
    """Comments of one review share this, so they become one job."""


@dataclass(frozen=True, slots=True)
class Cancel:
    """Stop any running work on the issue or pull request."""

    target: Target
    reason: str
    needs_permission: bool = False
    """A `stop` command needs write access; closing or unlabelling already did."""


@dataclass(frozen=True, slots=True)
class StatusRequest:
    """Say in a comment what the app is doing on this issue or pull request."""

    target: Target


@dataclass(frozen=True, slots=True)
class CiFailed:
    """Checks failed on the head commit of one of the app's pull requests: read them, maybe fix.

    The worker decides whether to act (workers/ci_fix.py); nobody asked, so no permission gate.
    """

    target: Target
    head_sha: str


@dataclass(frozen=True, slots=True)
class CiFixRequest:
    """`/qwen-fix fix-ci` on a pull request: fix its failed checks now; automatic fixing resumes."""

    target: Target


@dataclass(frozen=True, slots=True)
class Ignore:
    """Nothing to do; `reason` goes in the delivery's log line."""

    reason: str


Decision = Trigger | FollowUp | Cancel | StatusRequest | CiFailed | CiFixRequest | Ignore

FAILED_CONCLUSIONS = frozenset({"failure", "timed_out", "action_required"})
"""Conclusions of a check suite or workflow run the worker looks at: worth a fix, or (runs waiting
for a maintainer's approval) worth saying so; not cancelled, skipped or passed."""


def needs_write_permission(decision: Decision) -> bool:
    if isinstance(decision, Cancel):
        return decision.needs_permission
    return isinstance(decision, Trigger | FollowUp | StatusRequest | CiFixRequest)


# --- payload shapes: only the fields routing reads ----------------------------------------------


class _Named(BaseModel):
    name: str


class _Account(BaseModel):
    login: str
    type: str = "User"


class _Installation(BaseModel):
    id: int


class _Repository(BaseModel):
    full_name: str


class _Issue(BaseModel):
    number: int
    state: str = "open"
    pull_request: dict[str, Any] | None = None


class _Comment(BaseModel):
    id: int
    body: str | None = None
    user: _Account


class _ReviewComment(_Comment):
    pull_request_review_id: int | None = None


class _Review(BaseModel):
    id: int
    body: str | None = None
    user: _Account


class _Ref(BaseModel):
    ref: str


class _Pull(BaseModel):
    number: int
    state: str = "open"
    head: _Ref
    user: _Account | None = None


class _HeadRef(BaseModel):
    ref: str
    sha: str


class _LinkedPull(BaseModel):
    """A pull request as a check suite or workflow run lists it: no author, no state."""

    number: int
    head: _HeadRef


class _App(BaseModel):
    slug: str | None = None


class _CheckSuite(BaseModel):
    head_sha: str
    head_branch: str | None = None
    conclusion: str | None = None
    app: _App | None = None
    pull_requests: list[_LinkedPull] = []


class _WorkflowRun(BaseModel):
    head_sha: str
    head_branch: str | None = None
    conclusion: str | None = None
    pull_requests: list[_LinkedPull] = []


class _Event(BaseModel):
    repository: _Repository
    sender: _Account
    installation: _Installation | None = None


class _IssueLabel(_Event):
    issue: _Issue
    label: _Named


class _IssueEvent(_Event):
    issue: _Issue


class _IssueComment(_Event):
    issue: _Issue
    comment: _Comment


class _PullEvent(_Event):
    pull_request: _Pull


class _PullReviewComment(_Event):
    pull_request: _Pull
    comment: _ReviewComment


class _PullReview(_Event):
    pull_request: _Pull
    review: _Review


class _CheckSuiteEvent(_Event):
    check_suite: _CheckSuite


class _WorkflowRunEvent(_Event):
    workflow_run: _WorkflowRun


M = TypeVar("M", bound=_Event)


def route(event: str, payload: Mapping[str, Any], rules: Rules) -> Decision:
    """Decide what one delivery asks for. Raises MalformedPayload for a payload missing fields."""
    action = payload.get("action")
    handler = _HANDLERS.get((event, action if isinstance(action, str) else None))
    if handler is None:
        name = f"{event}.{action}" if action else event
        return Ignore(f"{name} is not an event qwen-fix acts on")
    return handler(payload, rules)


def _parse(model: type[M], payload: Mapping[str, Any]) -> M:
    try:
        return model.model_validate(payload)
    except ValidationError as exc:
        fields = ", ".join(".".join(map(str, e["loc"])) for e in exc.errors())
        raise MalformedPayload(f"payload is missing or has invalid fields: {fields}") from None


def _target(
    event: _Event,
    number: int,
    comment_id: int | None = None,
    comment_kind: Literal["issue", "review"] = "issue",
) -> Target | Ignore:
    if event.installation is None:
        return Ignore("delivery carries no installation: not sent to a GitHub App")
    return Target(
        installation_id=event.installation.id,
        repository=event.repository.full_name,
        number=number,
        sender=event.sender.login,
        comment_id=comment_id,
        comment_kind=comment_kind,
    )


def _is_trigger_label(label: str, rules: Rules) -> bool:
    return label.casefold() == rules.trigger_label.casefold()


def _issues_labeled(payload: Mapping[str, Any], rules: Rules) -> Decision:
    event = _parse(_IssueLabel, payload)
    if not _is_trigger_label(event.label.name, rules):
        return Ignore(
            f"label {event.label.name!r} is not the trigger label {rules.trigger_label!r}"
        )
    if event.sender.type == "Bot":
        return Ignore(f"sender {event.sender.login} is a bot")
    if event.issue.pull_request is not None:
        return Ignore("the label is on a pull request; label an issue instead")
    if event.issue.state != "open":
        return Ignore(f"issue #{event.issue.number} is {event.issue.state}")
    target = _target(event, event.issue.number)
    return target if isinstance(target, Ignore) else Trigger(target)


def _issues_unlabeled(payload: Mapping[str, Any], rules: Rules) -> Decision:
    event = _parse(_IssueLabel, payload)
    if not _is_trigger_label(event.label.name, rules):
        return Ignore(f"label {event.label.name!r} is not the trigger label")
    target = _target(event, event.issue.number)
    return target if isinstance(target, Ignore) else Cancel(target, "the label was removed")


def _issues_closed(payload: Mapping[str, Any], rules: Rules) -> Decision:
    event = _parse(_IssueEvent, payload)
    target = _target(event, event.issue.number)
    return target if isinstance(target, Ignore) else Cancel(target, "the issue was closed")


def _is_ours(pull: _Pull, rules: Rules) -> bool:
    """The app's own pull request: its branch prefix, or opened by the app's bot account
    (a repository may configure another prefix)."""
    by_app = pull.user is not None and pull.user.login in {f"{n}[bot]" for n in rules.names}
    return by_app or pull.head.ref.startswith(rules.branch_prefix)


def _pull_request_closed(payload: Mapping[str, Any], rules: Rules) -> Decision:
    event = _parse(_PullEvent, payload)
    if not _is_ours(event.pull_request, rules):
        return Ignore("not a qwen-fix pull request")
    target = _target(event, event.pull_request.number)
    return target if isinstance(target, Ignore) else Cancel(target, "the pull request was closed")


def _issue_comment_created(payload: Mapping[str, Any], rules: Rules) -> Decision:
    event = _parse(_IssueComment, payload)
    if event.comment.user.type == "Bot":
        return Ignore(f"comment by bot {event.comment.user.login}")
    body = event.comment.body or ""
    command = _first_command(body, rules)
    on_pull = event.issue.pull_request is not None
    if command is None and on_pull and any(mentions(body, name) for name in rules.names):
        command = parse_mention(body, _mentioned_name(body, rules))
    if command is None:
        return Ignore("the comment does not address qwen-fix")
    target = _target(event, event.issue.number, event.comment.id)
    if isinstance(target, Ignore):
        return target
    return _comment_decision(command, target, on_pull, event.issue.state)


def _comment_decision(command: Command, target: Target, on_pull: bool, state: str) -> Decision:
    if command.verb == "stop":
        return Cancel(target, f"{target.sender} asked to stop", needs_permission=True)
    if command.verb == "status":
        return StatusRequest(target)
    if state != "open":
        return Ignore(f"#{target.number} is {state}")
    if command.verb == "fix-ci":
        return CiFixRequest(target) if on_pull else Ignore("fix-ci works on pull requests")
    if on_pull:
        mode: Mode = "fix" if command.verb == "retry" else command.verb
        return FollowUp(target, "conversation", command.text, mode=mode)
    if command.verb == "retry":
        return Trigger(target, retry=True)
    return Trigger(target, mode=command.verb, instruction=command.text)


def _review_comment_created(payload: Mapping[str, Any], rules: Rules) -> Decision:
    event = _parse(_PullReviewComment, payload)
    comment = event.comment
    if comment.user.type == "Bot":
        return Ignore(f"comment by bot {comment.user.login}")
    return _follow_up(
        event,
        rules,
        comment.body or "",
        "review_comment",
        comment.id,
        comment.pull_request_review_id,
    )


def _review_submitted(payload: Mapping[str, Any], rules: Rules) -> Decision:
    event = _parse(_PullReview, payload)
    review = event.review
    if review.user.type == "Bot":
        return Ignore(f"review by bot {review.user.login}")
    return _follow_up(event, rules, review.body or "", "review", None, review.id)


def _follow_up(
    event: _PullReviewComment | _PullReview,
    rules: Rules,
    body: str,
    source: Literal["review_comment", "review"],
    comment_id: int | None,
    review_id: int | None,
) -> Decision:
    if not any(mentions(body, name) for name in rules.names):
        return Ignore("the comment does not mention qwen-fix")
    # Any pull request, as for conversation comments: the worker decides, from GitHub's own
    # answers and the repository's config, whether it may push there, and says so if not.
    pull = event.pull_request
    if pull.state != "open":
        return Ignore(f"pull request #{pull.number} is {pull.state}")
    target = _target(event, pull.number, comment_id, "review" if comment_id else "issue")
    if isinstance(target, Ignore):
        return target
    command = parse_mention(body, _mentioned_name(body, rules))
    if command.verb == "stop":
        return Cancel(target, f"{target.sender} asked to stop", needs_permission=True)
    if command.verb == "status":
        return StatusRequest(target)
    if command.verb == "fix-ci":
        return CiFixRequest(target)
    mode: Mode = "fix" if command.verb == "retry" else command.verb
    return FollowUp(target, source, command.text, mode=mode, review_id=review_id)


def _check_suite_completed(payload: Mapping[str, Any], rules: Rules) -> Decision:
    event = _parse(_CheckSuiteEvent, payload)
    suite = event.check_suite
    if suite.app is not None and suite.app.slug in rules.names:
        return Ignore("the app's own check suite")
    return _ci_failed(event, rules, suite.conclusion, suite.head_sha, suite.pull_requests)


def _workflow_run_completed(payload: Mapping[str, Any], rules: Rules) -> Decision:
    event = _parse(_WorkflowRunEvent, payload)
    run = event.workflow_run
    return _ci_failed(event, rules, run.conclusion, run.head_sha, run.pull_requests)


def _ci_failed(
    event: _Event, rules: Rules, conclusion: str | None, head_sha: str, pulls: list[_LinkedPull]
) -> Decision:
    """A failed suite or run on the head of a pull request whose branch has the app's prefix.

    Payloads name no pull request author; the worker checks that the app opened it. A fork's
    pull request is never listed (GitHub links only the repository's own branches)."""
    if conclusion not in FAILED_CONCLUSIONS:
        return Ignore(f"CI concluded {conclusion or 'nothing yet'}: nothing to fix")
    ours = [
        pull
        for pull in pulls
        if pull.head.sha == head_sha and pull.head.ref.startswith(rules.branch_prefix)
    ]
    if not ours:
        return Ignore("CI of no qwen-fix pull request's head commit")
    target = _target(event, ours[0].number)
    return target if isinstance(target, Ignore) else CiFailed(target, head_sha)


def _first_command(body: str, rules: Rules) -> Command | None:
    for name in rules.names:
        command = parse_command(body, name)
        if command is not None:
            return command
    return None


def _mentioned_name(body: str, rules: Rules) -> str:
    return next(name for name in rules.names if mentions(body, name) or parse_command(body, name))


_HANDLERS: dict[tuple[str, str | None], Callable[[Mapping[str, Any], Rules], Decision]] = {
    ("issues", "labeled"): _issues_labeled,
    ("issues", "unlabeled"): _issues_unlabeled,
    ("issues", "closed"): _issues_closed,
    ("pull_request", "closed"): _pull_request_closed,
    ("issue_comment", "created"): _issue_comment_created,
    ("pull_request_review_comment", "created"): _review_comment_created,
    ("pull_request_review", "submitted"): _review_submitted,
    ("check_suite", "completed"): _check_suite_completed,
    ("workflow_run", "completed"): _workflow_run_completed,
}
