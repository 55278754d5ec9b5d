"""Event → decision: pure functions saying what a webhook asks of the app, or why nothing."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ValidationError


class MalformedPayload(ValueError):
    """The payload lacks a field the event must have; the receiver answers 400."""


@dataclass(frozen=True, slots=True)
class Trigger:
    """Start work on an issue, once the sender's permission is confirmed."""

    installation_id: int
    repository: str
    issue_number: int
    sender: str
    mode: Literal["fix", "plan"] = "fix"


@dataclass(frozen=True, slots=True)
class Ignore:
    """Nothing to do; `reason` goes in the delivery's log line."""

    reason: str


Decision = Trigger | Ignore


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


class _IssuesLabeled(BaseModel):
    issue: _Issue
    label: _Named
    repository: _Repository
    sender: _Account
    installation: _Installation | None = None


def route(event: str, payload: Mapping[str, Any], *, trigger_label: str) -> Decision:
    """Decide what one delivery asks for. Raises MalformedPayload for a payload missing fields."""
    action = payload.get("action")
    handler = _HANDLERS.get((event, action if isinstance(action, str) else None))
    if handler is None:
        name = f"{event}.{action}" if action else event
        return Ignore(f"{name} is not an event qwen-fix acts on")
    return handler(payload, trigger_label)


M = TypeVar("M", bound=BaseModel)


def _parse(model: type[M], payload: Mapping[str, Any]) -> M:
    try:
        return model.model_validate(payload)
    except ValidationError as exc:
        fields = ", ".join(".".join(map(str, e["loc"])) for e in exc.errors())
        raise MalformedPayload(f"payload is missing or has invalid fields: {fields}") from None


def _issues_labeled(payload: Mapping[str, Any], trigger_label: str) -> Decision:
    event = _parse(_IssuesLabeled, payload)
    if event.label.name.casefold() != trigger_label.casefold():
        return Ignore(f"label {event.label.name!r} is not the trigger label {trigger_label!r}")
    if event.sender.type == "Bot":
        return Ignore(f"sender {event.sender.login} is a bot")
    if event.issue.state != "open":
        return Ignore(f"issue #{event.issue.number} is {event.issue.state}")
    if event.installation is None:
        return Ignore("delivery carries no installation: not sent to a GitHub App")
    return Trigger(
        installation_id=event.installation.id,
        repository=event.repository.full_name,
        issue_number=event.issue.number,
        sender=event.sender.login,
    )


_HANDLERS: dict[tuple[str, str | None], Callable[[Mapping[str, Any], str], Decision]] = {
    ("issues", "labeled"): _issues_labeled,
}
