"""Webhook deliveries as GitHub makes them: octokit example payloads filled from state, signed."""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from typing import Any

import httpx

from tests.fixtures import webhook_examples
from tests.github_emulator import ci, pull_refs
from tests.github_emulator.payloads import JSON, Payloads, node_id
from tests.github_emulator.state import Repo, World

USER_AGENT = "GitHub-Hookshot/emulator"


def example(event: str, action: str | None) -> JSON:
    """The first octokit example of `event` with that `action` (None for action-less events)."""
    for candidate in webhook_examples(event):
        if candidate.get("action") == action:
            return candidate
    raise KeyError(f"no octokit example of {event}.{action}")


def build(
    world: World,
    payloads: Payloads,
    event: str,
    action: str | None,
    *,
    repo: str,
    sender: str,
    issue: int | None = None,
    label: str | None = None,
    comment: int | None = None,
    pull: int | None = None,
    review: int | None = None,
    check_suite: int | None = None,
    workflow_run: int | None = None,
) -> JSON:
    """An example payload whose repository, issue, pull, comment, review, label, sender and
    installation are replaced by the emulator's own, so it matches the state.

    `comment` is an issue comment's id or a review comment's id; a review comment or a review
    brings its pull request along. A check suite or workflow run keeps the example's fields,
    filled from the emulator's where the REST shape has them.
    """
    found = world.repo(repo)
    if found is None:
        raise KeyError(f"no repository {repo}")
    if found.installation is None:
        raise KeyError(f"the app is not installed on {repo}: GitHub sends it nothing from there")
    payload = example(event, action)
    replacements: JSON = {
        "repository": payloads.full_repository(found),
        "sender": payloads.user(world.user(sender)),
        "installation": {
            "id": found.installation.id,
            "node_id": node_id("Installation", found.installation.id),
        },
    }
    if found.owner.type == "Organization":
        replacements["organization"] = organization(payloads, found)
    if issue is not None:
        replacements["issue"] = payloads.issue(found, found.issues[issue])
    if label is not None:
        replacements["label"] = payloads.label(found, _label(found, label))
    if comment is not None and comment in found.review_comments:
        review_comment = found.review_comments[comment]
        replacements["comment"] = payloads.review_comment(found, review_comment)
        pull = review_comment.pull_number if pull is None else pull
    elif comment is not None:
        replacements["comment"] = payloads.comment(found, found.comments[comment])
    if review is not None:
        replacements["review"] = payloads.review(found, found.reviews[review])
        pull = found.reviews[review].pull_number if pull is None else pull
    if pull is not None:
        replacements["pull_request"] = _pull(payloads, found, pull)
        if "number" in payload:
            replacements["number"] = pull
    if check_suite is not None:
        suite = ci.suite_payload(payloads, found, found.check_suites[check_suite])
        replacements["check_suite"] = filled_from(payload["check_suite"], suite)
    if workflow_run is not None:
        run = found.workflow_runs[workflow_run]
        rendered = ci.workflow_run_payload(payloads, found, run)
        replacements["workflow_run"] = filled_from(payload["workflow_run"], rendered)
        replacements["workflow"] = _workflow(payload["workflow"], rendered, run.name, run.path)
    payload.update(replacements)
    return payload


def filled_from(example_object: JSON, state: JSON) -> JSON:
    """The example's fields, each taken from the emulator's object when it has one."""
    return {key: state.get(key, value) for key, value in example_object.items()}


def _workflow(example_workflow: JSON, run: JSON, name: str, path: str) -> JSON:
    web = run["html_url"].rsplit("/actions/runs/", 1)[0]
    return {
        **example_workflow,
        "id": run["workflow_id"],
        "node_id": node_id("Workflow", run["workflow_id"]),
        "name": name,
        "path": path,
        "state": "active",
        "url": run["workflow_url"],
        "html_url": f"{web}/blob/{run['head_branch']}/{path}",
        "badge_url": f"{web}/workflows/{path.rsplit('/', 1)[-1]}/badge.svg",
    }


def _label(repo: Repo, name: str) -> Any:
    for label in repo.labels.values():
        if label.name.lower() == name.lower():
            return label
    raise KeyError(f"no label {name!r} in {repo.full_name}: add_label it first")


def _pull(payloads: Payloads, repo: Repo, number: int) -> JSON:
    issue = repo.issues[number]
    assert issue.pull is not None, f"#{number} is an issue, not a pull request"
    head, base = pull_refs.head_and_base(repo, issue)
    return payloads.pull(repo, issue, head, base)


def organization(payloads: Payloads, repo: Repo) -> JSON:
    user = payloads.user(repo.owner)
    keys = ("login", "id", "node_id", "url", "repos_url", "events_url", "avatar_url")
    org = {key: user[key] for key in keys}
    org.update({"hooks_url": f"{user['url']}/hooks", "issues_url": f"{user['url']}/issues"})
    org.update({"members_url": f"{user['url']}/members{{/member}}", "description": None})
    org["public_members_url"] = f"{user['url']}/public_members{{/member}}"
    return org


def signature_of(secret: str, body: bytes) -> str:
    """The `X-Hub-Signature-256` value: HMAC-SHA256 of the raw body, hex, `sha256=` prefixed."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def signed_delivery(
    event: str,
    payload: JSON,
    secret: str,
    delivery_id: str | None = None,
    signature_header: str | None = None,
) -> tuple[bytes, dict[str, str]]:
    """Body and headers of one delivery, exactly as GitHub's hookshot sends them."""
    body = json.dumps(payload, separators=(",", ":")).encode()
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": delivery_id or str(uuid.uuid4()),
        "X-GitHub-Hook-ID": "1",
        "X-GitHub-Hook-Installation-Target-Type": "integration",
        "X-GitHub-Hook-Installation-Target-ID": "1",
        "X-Hub-Signature-256": signature_header or signature_of(secret, body),
        "X-Hub-Signature": "sha1=" + hmac.new(secret.encode(), body, hashlib.sha1).hexdigest(),
    }
    return body, headers


def deliver(
    url: str,
    event: str,
    payload: JSON,
    secret: str,
    delivery_id: str | None = None,
    signature: str | None = None,
) -> httpx.Response:
    """POST one signed delivery to `url`; `signature=` overrides the header (to test a bad one)."""
    body, headers = signed_delivery(event, payload, secret, delivery_id, signature)
    return httpx.post(url, content=body, headers=headers, timeout=30)


async def deliver_async(
    url: str,
    event: str,
    payload: JSON,
    secret: str,
    delivery_id: str | None = None,
    signature: str | None = None,
    client: httpx.AsyncClient | None = None,
) -> httpx.Response:
    """`deliver` for async tests; `client` may carry an ASGI transport to an in-process app."""
    body, headers = signed_delivery(event, payload, secret, delivery_id, signature)
    if client is not None:
        return await client.post(url, content=body, headers=headers)
    async with httpx.AsyncClient(timeout=30) as fresh:
        return await fresh.post(url, content=body, headers=headers)
