"""The webhook receiver over real Redis (arq) and the GitHub emulator (permissions).

Requests go through the ASGI interface in-process; the end-to-end suite covers real sockets.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from arq import create_pool
from arq.connections import ArqRedis, RedisSettings
from starlette.types import ASGIApp

from bot.control import WorkRegistry
from bot.deliveries import DeliveryLog
from bot.github import GitHubApp, SharedTransport
from bot.jobs import CI_FIX, SOLVE_ISSUE, CiFixJob, IssueJob
from bot.receiver import WEBHOOK_PATH, Receiver, create_app
from bot.routing import Rules
from bot.signature import sign
from tests.fixtures import webhook_examples
from tests.github_emulator.emulator import GitHubEmulator

SECRET = "webhook-secret"
APP_ID = 31337
REPO = "octo-org/widgets"
LABEL = "qwen-fix"


@dataclass
class World:
    emulator: GitHubEmulator
    client: httpx.AsyncClient
    queue: ArqRedis
    issue: int
    app: ASGIApp
    receiver: Receiver

    def receiver_settle(self, seconds: float) -> None:
        self.receiver.ci_settle = seconds

    async def post(
        self, event: str, payload: Any, *, delivery: str, signature: str | None = None
    ) -> httpx.Response:
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        headers = {
            "X-GitHub-Event": event,
            "X-GitHub-Delivery": delivery,
            "X-Hub-Signature-256": signature or sign(SECRET.encode(), body),
            "Content-Type": "application/json",
        }
        return await self.client.post(WEBHOOK_PATH, content=body, headers=headers)

    def labeled(self, sender: str, label: str = LABEL) -> dict[str, Any]:
        self.emulator.add_label(REPO, label, issue=self.issue)
        return self.emulator.webhook(
            "issues", "labeled", repo=REPO, sender=sender, issue=self.issue, label=label
        )

    async def queued(self) -> list[dict[str, Any]]:
        return [
            {"function": job.function, "args": job.args, "id": job.job_id}
            for job in await self.queue.queued_jobs()
        ]


@pytest.fixture
def emulator(tmp_path: Any) -> Iterator[GitHubEmulator]:
    with GitHubEmulator(tmp_path / "github") as emulator:
        yield emulator


@pytest.fixture
async def world(emulator: GitHubEmulator, redis_url: str) -> AsyncIterator[World]:
    key = emulator.add_app(APP_ID)
    installation = emulator.add_installation(APP_ID, "octo-org", account_type="Organization")
    emulator.add_repo("octo-org", "widgets", {"README.md": "widgets\n"}, installation)
    emulator.set_permission(REPO, "maintainer", "write")
    emulator.set_permission(REPO, "watcher", "read")
    emulator.set_permission(REPO, "triager", "triage")
    issue = emulator.add_issue(REPO, "Widgets break", "They do.", "watcher")
    queue = await create_pool(RedisSettings.from_dsn(redis_url))
    await queue.flushall()
    receiver = Receiver(
        webhook_secret=SECRET.encode(),
        rules=Rules(trigger_label=LABEL),
        github=GitHubApp(APP_ID, key, emulator.api_url),
        queue=queue,
        deliveries=DeliveryLog(queue),
        registry=WorkRegistry(queue),
    )
    app = create_app(receiver=receiver)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://receiver") as client:
        yield World(emulator, client, queue, issue, app, receiver)
    await queue.aclose()


async def test_a_label_by_a_writer_queues_one_job(world: World) -> None:
    response = await world.post("issues", world.labeled("maintainer"), delivery="d-1")
    assert response.status_code == 202, response.text
    jobs = await world.queued()
    assert len(jobs) == 1
    assert jobs[0]["function"] == SOLVE_ISSUE
    job = IssueJob.model_validate(jobs[0]["args"][0])
    assert (job.repository, job.issue_number, job.triggered_by) == (REPO, world.issue, "maintainer")
    assert job.delivery_id == "d-1"
    assert response.json() == {"status": "queued", "detail": job.job_id()}


async def test_the_same_delivery_twice_queues_one_job(world: World) -> None:
    payload = world.labeled("maintainer")
    first = await world.post("issues", payload, delivery="same")
    second = await world.post("issues", payload, delivery="same")
    assert (first.status_code, second.status_code) == (202, 200)
    assert second.json()["status"] == "duplicate"
    assert len(await world.queued()) == 1


@pytest.mark.parametrize("login", ["watcher", "triager", "stranger"])
async def test_a_label_by_a_user_without_write_queues_nothing(world: World, login: str) -> None:
    response = await world.post("issues", world.labeled(login), delivery=f"d-{login}")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ignored"
    assert f"{login} has" in body["detail"]
    assert "write is needed" in body["detail"]
    assert await world.queued() == []


async def test_another_label_queues_nothing(world: World) -> None:
    response = await world.post("issues", world.labeled("maintainer", "bug"), delivery="d-bug")
    assert response.status_code == 200
    assert response.json()["status"] == "ignored"
    assert await world.queued() == []


async def test_a_bad_signature_is_401_and_queues_nothing(world: World) -> None:
    payload = world.labeled("maintainer")
    wrong = sign(b"not the secret", json.dumps(payload).encode())
    for signature in (wrong, "sha256=00", "garbage"):
        response = await world.post("issues", payload, delivery="d-x", signature=signature)
        assert response.status_code == 401
    unsigned = await world.client.post(
        WEBHOOK_PATH, content=b"{}", headers={"X-GitHub-Event": "issues", "X-GitHub-Delivery": "u"}
    )
    assert unsigned.status_code == 401
    assert await world.queued() == []
    # The rejected delivery id was not consumed: a correctly signed redelivery still works.
    assert (await world.post("issues", payload, delivery="d-x")).status_code == 202


async def test_malformed_bodies_are_400_with_the_reason(world: World) -> None:
    not_json = await world.post("issues", b"{not json", delivery="m-1")
    assert not_json.status_code == 400
    assert not_json.json()["detail"] == "body is not valid JSON"
    payload = world.labeled("maintainer")
    del payload["issue"]["number"]
    missing = await world.post("issues", payload, delivery="m-2")
    assert missing.status_code == 400
    assert "issue.number" in missing.json()["detail"]
    array = await world.post("issues", b"[]", delivery="m-3")
    assert array.status_code == 400
    body = b"{}"
    no_event = await world.client.post(
        WEBHOOK_PATH,
        content=body,
        headers={"X-Hub-Signature-256": sign(SECRET.encode(), body), "X-GitHub-Delivery": "m-4"},
    )
    assert no_event.status_code == 400
    assert await world.queued() == []


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
async def test_every_octokit_example_is_accepted_signed_and_refused_mis_signed(
    world: World, event: str
) -> None:
    examples = webhook_examples(event)
    for index, example in enumerate(examples):
        body = json.dumps(example).encode()
        good = await world.post(event, body, delivery=f"{event}-{index}")
        assert good.status_code == 200, (example.get("action"), good.text)
        assert good.json()["status"] == "ignored"
        bad = await world.post(
            event, body, delivery=f"{event}-{index}-bad", signature=sign(b"wrong", body)
        )
        assert bad.status_code == 401
    assert await world.queued() == []


async def test_a_repository_may_name_its_own_trigger_label(world: World) -> None:
    world.emulator.commit_files(REPO, "main", {".github/qwen-fix.yml": "label: ai-fix\n"})
    mine = await world.post("issues", world.labeled("maintainer", "ai-fix"), delivery="r-1")
    assert mine.status_code == 202, mine.text
    other = await world.post("issues", world.labeled("maintainer", "bug"), delivery="r-2")
    assert other.json()["status"] == "ignored"
    # The app's own label keeps working in that repository too.
    ours = await world.post("issues", world.labeled("maintainer", LABEL), delivery="r-3")
    assert ours.status_code == 202
    # The same issue: the second run supersedes the first, which is marked to be aborted.
    assert [job["id"] for job in await world.queued()] == ["solve_issue:r-1", "solve_issue:r-3"]
    assert await world.queue.zscore("arq:abort", "solve_issue:r-1") is not None


async def test_a_non_ascii_signature_is_401_not_a_crash(world: World) -> None:
    body = json.dumps(world.labeled("maintainer")).encode()
    good = sign(SECRET.encode(), body).encode()
    for signature in (b"sha256=" + "é".encode() * 32, good[:-1] + b"\xff", b"\xff"):
        response = await world.client.post(
            WEBHOOK_PATH,
            content=body,
            headers={
                b"X-GitHub-Event": b"issues",
                b"X-GitHub-Delivery": b"n-1",
                b"X-Hub-Signature-256": signature,
                b"Content-Type": b"application/json",
            },
        )
        assert response.status_code == 401, response.text
    assert await world.queued() == []


def _labeled_with(world: World, **changes: Any) -> bytes:
    """The maintainer's trigger label event with top-level fields replaced (None deletes)."""
    payload = world.labeled("maintainer")
    for name, value in changes.items():
        path = name.split("__")
        parent = payload
        for part in path[:-1]:
            parent = parent[part]
        parent[path[-1]] = value
    return json.dumps(payload).encode()


# Each body is validly signed: these are deliveries GitHub could never send, or an attacker
# with the secret. The receiver must say what is wrong (4xx), or ignore a field it has no use
# for, and never fail (5xx).
MALFORMED: dict[str, tuple[int, Any]] = {
    "deeply nested JSON": (400, lambda w: b"[" * 100_000 + b"]" * 100_000),
    "a number too long to read": (400, lambda w: b'{"action": 1' + b"0" * 5000 + b"}"),
    "non-UTF-8 bytes": (400, lambda w: b'{"action": "labeled\xff\xfe"}'),
    "a JSON string, not an object": (400, lambda w: b'"issues"'),
    "action a list": (400, lambda w: _labeled_with(w, action=["labeled"])),
    "action no GitHub action name": (400, lambda w: _labeled_with(w, action="\ud800")),
    "a lone surrogate quoted in the reason": (
        200,
        lambda w: _labeled_with(w, issue__state="\ud800"),
    ),
    "label null": (400, lambda w: _labeled_with(w, label=None)),
    "label a string on an action that has none": (
        200,
        lambda w: _labeled_with(w, action="opened", label="qwen-fix"),
    ),
    "installation a string on another action": (
        400,
        lambda w: _labeled_with(w, action="opened", installation="1"),
    ),
    "installation.id not a number": (400, lambda w: _labeled_with(w, installation__id="one")),
    "installation.id out of range": (400, lambda w: _labeled_with(w, installation__id=2**64)),
    "issue number negative": (400, lambda w: _labeled_with(w, issue__number=-1)),
    "repository without an owner": (
        400,
        lambda w: _labeled_with(w, repository__full_name="widgets"),
    ),
    "sender login with a path in it": (
        400,
        lambda w: _labeled_with(w, sender__login="../../app/installations"),
    ),
    "an installation GitHub does not know": (
        422,
        lambda w: _labeled_with(w, installation__id=987_654_321),
    ),
}


@pytest.mark.parametrize("case", list(MALFORMED))
async def test_a_malformed_signed_delivery_is_a_4xx_with_a_reason(world: World, case: str) -> None:
    status, make = MALFORMED[case]
    delivery = "bad-" + case.replace(" ", "-")
    response = await world.post("issues", make(world), delivery=delivery)
    assert response.status_code == status, response.text
    assert response.json()["status"] == ("ignored" if status == 200 else "rejected")
    assert response.json()["detail"]
    assert await world.queued() == []


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({"X-GitHub-Event": "issues\xff"}, 400),
        ({"X-GitHub-Event": ""}, 400),
        ({"X-GitHub-Delivery": "a b"}, 400),
        ({"X-GitHub-Delivery": "d" * 500}, 400),
        ({"Content-Type": "application/x-www-form-urlencoded"}, 415),
        ({"Content-Type": "application/json; charset=utf-8"}, 202),
    ],
)
async def test_malformed_headers_of_a_signed_delivery_are_4xx(
    world: World, headers: dict[str, str], status: int
) -> None:
    body = json.dumps(world.labeled("maintainer")).encode()
    sent = {
        "X-GitHub-Event": "issues",
        "X-GitHub-Delivery": "h-1",
        "X-Hub-Signature-256": sign(SECRET.encode(), body),
        "Content-Type": "application/json",
    }
    encoded = {k.encode(): v.encode("latin-1") for k, v in (sent | headers).items()}
    response = await world.client.post(WEBHOOK_PATH, content=body, headers=encoded)
    assert response.status_code == status, response.text
    assert (await world.queued() != []) == (status == 202)


async def test_a_body_larger_than_github_sends_is_413_before_the_signature(world: World) -> None:
    github_cap = 25 * 1024 * 1024  # GitHub caps webhook payloads at 25 MB
    response = await world.client.post(
        WEBHOOK_PATH,
        content=b" " * (github_cap + 1),
        headers={"X-GitHub-Event": "issues", "X-GitHub-Delivery": "big"},
    )
    assert response.status_code == 413


def reaction_posts(world: World) -> list[str]:
    return [
        r.path for r in world.emulator.requests if r.method == "POST" and "/reactions" in r.path
    ]


async def test_a_burst_of_triggers_on_one_issue_gets_one_reaction(world: World) -> None:
    payload = world.labeled("maintainer")
    for delivery in ("b-1", "b-2", "b-3"):
        assert (await world.post("issues", payload, delivery=delivery)).status_code == 202
    # GitHub keeps one 👀 per user anyway: the repeats are not sent to wait behind the pacing.
    assert len(reaction_posts(world)) == 1
    reactions = world.emulator.reactions(REPO, issue=world.issue)
    assert [r["content"] for r in reactions] == ["eyes"]


async def test_a_comment_after_a_label_gets_its_own_reaction(world: World) -> None:
    labeled = await world.post("issues", world.labeled("maintainer"), delivery="c-1")
    assert labeled.status_code == 202
    comment = world.emulator.add_comment(REPO, world.issue, "/qwen-fix plan", "maintainer")
    payload = world.emulator.webhook(
        "issue_comment", "created", repo=REPO, sender="maintainer", issue=world.issue,
        comment=comment,
    )  # fmt: skip
    assert (await world.post("issue_comment", payload, delivery="c-2")).status_code == 202
    assert len(reaction_posts(world)) == 2
    reactions = world.emulator.reactions(REPO, comment=comment)
    assert [r["content"] for r in reactions] == ["eyes"]


async def test_other_methods_on_the_webhook_path_are_405(world: World) -> None:
    for method in ("GET", "PUT", "DELETE"):
        response = await world.client.request(method, WEBHOOK_PATH)
        assert response.status_code == 405, method
        assert response.headers["allow"] == "POST"


async def asgi_post(
    world: World, chunks: list[bytes], delivery: str
) -> tuple[int, dict[str, Any], int]:
    """POST to the app's ASGI interface with the body in several messages, as a server does
    with a large or slow body; the answer's status and body, and how many messages were left
    unread."""
    body = b"".join(chunks)
    headers = [
        (b"x-github-event", b"issues"),
        (b"x-github-delivery", delivery.encode()),
        (b"x-hub-signature-256", sign(SECRET.encode(), body).encode()),
        (b"content-type", b"application/json"),
    ]
    scope = {"type": "http", "method": "POST", "path": WEBHOOK_PATH, "headers": headers}
    messages = [
        {"type": "http.request", "body": chunk, "more_body": index < len(chunks) - 1}
        for index, chunk in enumerate(chunks)
    ]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await world.app(scope, receive, send)
    return sent[0]["status"], json.loads(sent[1]["body"]), len(messages)


async def test_a_body_sent_in_chunks_is_read_whole(world: World) -> None:
    body = json.dumps(world.labeled("maintainer")).encode()
    chunks = [body[i : i + 1000] for i in range(0, len(body), 1000)]
    status, answer, unread = await asgi_post(world, chunks, "chunked-1")
    assert (status, answer["status"], unread) == (202, "queued", 0)


async def test_chunks_beyond_githubs_cap_are_413_before_the_rest_is_read(world: World) -> None:
    github_cap = 25 * 1024 * 1024
    chunks = [b" " * (github_cap // 2)] * 4
    status, answer, unread = await asgi_post(world, chunks, "chunked-big")
    assert (status, answer["status"], unread) == (413, "rejected", 1)
    assert await world.queued() == []


async def test_github_clients_share_one_transport_that_outlives_each(
    emulator: GitHubEmulator,
) -> None:
    key = emulator.add_app(APP_ID)
    installation = emulator.add_installation(APP_ID, "octo-org", account_type="Organization")
    emulator.add_repo("octo-org", "widgets", {"README.md": "widgets\n"}, installation)
    emulator.set_permission(REPO, "maintainer", "write")
    transport = SharedTransport()
    github = GitHubApp(APP_ID, key, emulator.api_url, transport=transport)
    try:
        # githubkit closes its client after each call: the next calls still have the pool.
        assert await github.permission(installation, REPO, "maintainer") == "write"
        assert await github.permission(installation, REPO, "stranger") == "none"
        assert await github.bot_login() == f"app-{APP_ID}[bot]"
    finally:
        await transport.close()


# --- CI on the app's pull requests -------------------------------------------------------------

FAILING = [{"name": "lint", "conclusion": "failure", "steps": ["Run ruff"], "log": "E1\n"}]


def failed_ci(world: World, branch: str) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """A pull request from `branch` whose workflow run failed: (head, workflow_run payload,
    check_suite payload), as GitHub sends them when the run completes."""
    head = world.emulator.commit_files(REPO, branch, {"src.py": "x = 1\n"}, "Change")
    world.emulator.add_pull(REPO, branch, "Change", None, "qwen-fix[bot]")
    run = world.emulator.add_workflow_run(REPO, branch, FAILING)
    by_run = world.emulator.webhook(
        "workflow_run", "completed", repo=REPO, sender="alice", workflow_run=run
    )
    suite = by_run["workflow_run"]["check_suite_id"]
    by_suite = world.emulator.webhook(
        "check_suite", "completed", repo=REPO, sender="alice", check_suite=suite
    )
    return head, by_run, by_suite


async def test_a_failed_run_queues_one_deferred_ci_job_for_its_commit(world: World) -> None:
    world.receiver_settle(30.0)
    head, by_run, by_suite = failed_ci(world, "qwen-fix/issue-1")
    first = await world.post("workflow_run", by_run, delivery="ci-1")
    second = await world.post("check_suite", by_suite, delivery="ci-2")
    assert (first.status_code, second.status_code) == (202, 202)
    job_id = f"{CI_FIX}:{REPO}#2:{head}"
    assert first.json()["detail"] == second.json()["detail"] == job_id
    (queued,) = await world.queue.queued_jobs()
    assert (queued.function, queued.job_id) == (CI_FIX, job_id)
    job = CiFixJob.model_validate(queued.args[0])
    assert (job.pull_number, job.head_sha, job.requested) == (2, head, False)
    # Deferred by the settle time, so the commit's other suites finish first.
    score = await world.queue.zscore("arq:queue", job_id)
    assert score is not None and score / 1000 - time.time() > 25
    # Nobody asked: no 👀 on anything, and no work registered as running on the pull request.
    assert world.emulator.reactions(REPO, issue=2) == []
    assert await WorkRegistry(world.queue).active(f"{REPO}#2") is None


async def test_a_failed_run_on_a_persons_branch_queues_nothing(world: World) -> None:
    _, by_run, _ = failed_ci(world, "feature")
    response = await world.post("workflow_run", by_run, delivery="ci-3")
    assert response.json() == {
        "status": "ignored",
        "detail": "CI of no qwen-fix pull request's head commit",
    }
    assert await world.queued() == []


async def test_a_repository_may_name_its_own_branch_prefix_for_ci(world: World) -> None:
    world.emulator.commit_files(REPO, "main", {".github/qwen-fix.yml": "branch_prefix: bots/\n"})
    _, by_run, _ = failed_ci(world, "bots/issue-1")
    response = await world.post("workflow_run", by_run, delivery="ci-4")
    assert response.status_code == 202, response.text
    assert [job["function"] for job in await world.queued()] == [CI_FIX]


async def test_a_ci_payload_whose_head_is_not_a_commit_id_is_400(world: World) -> None:
    _, by_run, _ = failed_ci(world, "qwen-fix/issue-1")
    sha = "../../etc"
    by_run["workflow_run"]["head_sha"] = sha
    by_run["workflow_run"]["pull_requests"][0]["head"]["sha"] = sha
    response = await world.post("workflow_run", by_run, delivery="ci-5")
    assert response.status_code == 400
    assert response.json()["detail"] == "head_sha is not a full commit id"
    assert await world.queued() == []


@pytest.mark.parametrize(("login", "queued"), [("maintainer", True), ("watcher", False)])
async def test_fix_ci_needs_write_access(world: World, login: str, queued: bool) -> None:
    failed_ci(world, "qwen-fix/issue-1")
    comment = world.emulator.add_comment(REPO, 2, "/qwen-fix fix-ci", login)
    payload = world.emulator.webhook(
        "issue_comment", "created", repo=REPO, sender=login, issue=2, comment=comment
    )
    response = await world.post("issue_comment", payload, delivery=f"fix-ci-{login}")
    jobs = await world.queued()
    if not queued:
        assert response.json()["status"] == "ignored" and jobs == []
        return
    assert response.status_code == 202
    assert [job["id"] for job in jobs] == [f"{CI_FIX}:fix-ci-{login}"]
    job = CiFixJob.model_validate(jobs[0]["args"][0])
    assert (job.requested, job.head_sha, job.comment_id) == (True, "", comment)
