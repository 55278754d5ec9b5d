"""The webhook receiver: verify, de-duplicate, route, gate on permission, enqueue, answer fast."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from typing import Any

import structlog
from arq import create_pool
from arq.connections import ArqRedis
from arq.constants import default_queue_name
from fastapi import FastAPI, Request
from fastapi.responses import Response
from githubkit.exception import RequestFailed
from starlette.types import Receive, Scope, Send

from bot import run_pages
from bot.control import WorkRegistry
from bot.deliveries import DeliveryLog
from bot.delivery_shape import (
    HEADER_TOKEN,
    MAX_BODY,
    REPOSITORY,
    DeliveryHeaders,
    check_target,
    field_at,
    header_problem,
    parse_payload,
    read_body,
)
from bot.github import GitHubApp, can_trigger
from bot.jobs import CiFixJob, FollowUpJob, IssueJob, Job, enqueue, job_name
from bot.metrics import DeliveryObservation, ReceiverMetrics
from bot.redaction import redact
from bot.redelivery import FailedDeliveries, keep_up, mark_seen
from bot.redis_connection import RECEIVER_PATIENCE, redis_settings
from bot.repo_labels import RepoLabels
from bot.routing import (
    FAILED_CONCLUSIONS,
    Cancel,
    CiFailed,
    CiFixRequest,
    Decision,
    FollowUp,
    Ignore,
    MalformedPayload,
    Rules,
    StatusRequest,
    Target,
    Trigger,
    needs_write_permission,
    route,
)
from bot.run_pages import RunViewer
from bot.runs import RunStore
from bot.settings import Settings
from bot.signature import is_valid_signature
from bot.status import status_reply
from bot.throttle import RECEIVER_RETRY
from bot.web_auth import GitHubOAuth, WebAuth, github_web_url

log = structlog.get_logger("qwen_fix.receiver")

WEBHOOK_PATH = "/webhooks/github"

CI_EVENTS = {"check_suite": "check_suite", "workflow_run": "workflow_run"}
"""Events whose payload object (same name) says how CI ended on a commit."""

ACKNOWLEDGE_EVERY = 60.0
"""Seconds within which one issue or comment gets one 👀, however many deliveries ask."""

After = Callable[[], Awaitable[None]]
"""Work done once the answer is sent, so GitHub never waits on it."""


@dataclass(frozen=True, slots=True)
class Answer:
    """The receiver's JSON answer to GitHub; its outcome labels the metrics."""

    status: int
    outcome: str
    detail: str
    after: After | None = None

    def body(self) -> bytes:
        # ASCII with escapes: a reason may quote payload text holding lone surrogates (valid
        # JSON escapes), which UTF-8 cannot encode.
        content = {"status": self.outcome, "detail": self.detail}
        return json.dumps(content, separators=(",", ":")).encode()

    async def send(self, send: Send) -> None:
        body = self.body()
        headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
        await send({"type": "http.response.start", "status": self.status, "headers": headers})
        await send({"type": "http.response.body", "body": body})


@dataclass
class Receiver:
    """What a delivery is handled with; built once per process."""

    webhook_secret: bytes
    rules: Rules
    github: GitHubApp
    queue: ArqRedis
    deliveries: DeliveryLog
    registry: WorkRegistry
    repo_labels: RepoLabels = field(default_factory=lambda: RepoLabels())
    metrics: ReceiverMetrics = field(default_factory=ReceiverMetrics)
    failures: FailedDeliveries = field(default_factory=FailedDeliveries)
    """Deliveries answered 503, asked for again once GitHub answers (bot/redelivery.py)."""
    ci_settle: float = 30.0
    """Seconds a CI job waits after a failed suite, so the other suites of the commit finish
    and join it (CI_SETTLE_SECONDS)."""
    _acknowledged: dict[tuple[str, int, int | None], float] = field(
        default_factory=dict, init=False, repr=False
    )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The ASGI endpoint of `POST /webhooks/github`."""
        with self.metrics.delivery() as seen:
            answer = await self._handle(DeliveryHeaders.of(scope["headers"]), receive, seen)
            seen.outcome = answer.outcome
        await answer.send(send)
        if answer.after is not None:
            await answer.after()

    async def _handle(
        self, headers: DeliveryHeaders, receive: Receive, seen: DeliveryObservation
    ) -> Answer:
        body = await read_body(receive)
        if body is None:
            log.warning("webhook.rejected", reason="body too large")
            return Answer(413, "rejected", f"the body is larger than GitHub's {MAX_BODY} bytes")
        if not is_valid_signature(self.webhook_secret, body, headers.signature):
            log.warning("webhook.rejected", reason="bad or missing X-Hub-Signature-256")
            return Answer(401, "rejected", "bad or missing X-Hub-Signature-256")
        event, delivery_id = headers.event, headers.delivery_id
        seen.event = event if HEADER_TOKEN.fullmatch(event) else ""
        problem = header_problem(event, delivery_id, headers.content_type)
        if problem is not None:
            log.warning("webhook.malformed", reason=problem[2])
            return Answer(*problem)
        with structlog.contextvars.bound_contextvars(delivery_id=delivery_id, event=event):
            return await self._handle_event(event, delivery_id, body, seen)

    async def _handle_event(
        self, event: str, delivery_id: str, body: bytes, seen: DeliveryObservation
    ) -> Answer:
        try:
            payload = parse_payload(body)
            seen.action = payload.get("action") or ""
            decision = route(event, payload, self.rules)
            if isinstance(decision, Ignore) and event == "issues":
                decision = await self._with_repo_label(event, payload, decision)
            elif isinstance(decision, Ignore) and event in CI_EVENTS:
                decision = await self._with_repo_prefix(event, payload, decision)
            if not isinstance(decision, Ignore):
                check_target(decision)
        except MalformedPayload as exc:
            log.warning("webhook.malformed", reason=str(exc))
            return Answer(400, "rejected", str(exc))
        if isinstance(decision, Ignore):
            log.info("webhook.ignored", action=payload.get("action"), reason=decision.reason)
            return Answer(200, "ignored", decision.reason)
        if not await self.deliveries.claim(delivery_id):
            log.info("webhook.duplicate")
            return Answer(200, "duplicate", "this delivery was already handled")
        target = decision.target
        with structlog.contextvars.bound_contextvars(
            repo=target.repository, number=target.number, sender=target.sender
        ):
            try:
                return await self._act(decision, delivery_id)
            except Exception as exc:
                await self.deliveries.release(delivery_id)
                if isinstance(exc, RequestFailed) and exc.response.status_code == 404:
                    # The payload names an installation GitHub does not have: asking again will
                    # not help, but a redelivery (after a fix of GITHUB_API_URL, say) is acted on.
                    reason = (
                        f"GitHub knows no installation {target.installation_id} "
                        "(uninstalled, or GITHUB_API_URL is another GitHub)"
                    )
                    log.warning("webhook.unknown_installation", reason=reason)
                    return Answer(422, "rejected", reason)
                log.exception("webhook.failed")
                self.failures.note()
                return Answer(503, "failed", "could not act on the delivery; GitHub may redeliver")

    async def _with_repo_label(
        self, event: str, payload: dict[str, Any], ignored: Ignore
    ) -> Decision:
        """Route a label event again under the repository's own trigger label, if it has one."""
        label = field_at(payload, "label", "name")
        installation = field_at(payload, "installation", "id")
        repository = field_at(payload, "repository", "full_name")
        if payload.get("action") not in ("labeled", "unlabeled") or not label or not installation:
            return ignored
        if not isinstance(repository, str) or not REPOSITORY.fullmatch(repository):
            raise MalformedPayload("repository.full_name is not owner/name")
        try:
            repo_label = await self.repo_labels.label(
                self.github, int(installation), str(repository)
            )
        except Exception:
            log.warning("webhook.repo_label_unknown", exc_info=True)
            return ignored
        if repo_label is None or repo_label.casefold() != str(label).casefold():
            return ignored
        return route(event, payload, replace(self.rules, trigger_label=repo_label))

    async def _with_repo_prefix(
        self, event: str, payload: dict[str, Any], ignored: Ignore
    ) -> Decision:
        """Route a failed suite again under the repository's own branch prefix, if it has one."""
        if field_at(payload, CI_EVENTS[event], "conclusion") not in FAILED_CONCLUSIONS:
            return ignored
        installation = field_at(payload, "installation", "id")
        repository = field_at(payload, "repository", "full_name")
        if not installation or not isinstance(repository, str):
            return ignored
        if not REPOSITORY.fullmatch(repository):
            raise MalformedPayload("repository.full_name is not owner/name")
        try:
            prefix = await self.repo_labels.branch_prefix(
                self.github, int(installation), repository
            )
        except Exception:
            log.warning("webhook.repo_prefix_unknown", exc_info=True)
            return ignored
        if prefix is None or prefix == self.rules.branch_prefix:
            return ignored
        return route(event, payload, replace(self.rules, branch_prefix=prefix))

    async def _act(self, decision: Decision, delivery_id: str) -> Answer:
        assert not isinstance(decision, Ignore)
        target = decision.target
        if needs_write_permission(decision):
            permission = await self.github.permission(
                target.installation_id, target.repository, target.sender
            )
            if not can_trigger(permission):
                reason = f"{target.sender} has {permission} permission; write is needed"
                log.info("webhook.ignored", reason=reason)
                return Answer(200, "ignored", reason)
        if isinstance(decision, Cancel):
            return await self._cancel(decision)
        if isinstance(decision, StatusRequest):
            return Answer(200, "status", "posting a status comment", self._post_status(target))
        if isinstance(decision, CiFailed):
            return await self._ci_failed(decision, delivery_id)
        job = await self._job_for(decision, delivery_id)
        return await self._start(job, target)

    async def _ci_failed(self, decision: CiFailed, delivery_id: str) -> Answer:
        """One job per pull request and commit, after a settle time; the worker decides whether
        a fix is due. Nobody asked, so there is nothing to react to and no work to register."""
        target = decision.target
        job = CiFixJob(
            installation_id=target.installation_id,
            repository=target.repository,
            pull_number=target.number,
            triggered_by=target.sender,
            delivery_id=delivery_id,
            head_sha=decision.head_sha,
        )
        queued = await enqueue(self.queue, job, defer=self.ci_settle)
        log.info("webhook.queued" if queued else "webhook.joined", job_id=job.job_id())
        return Answer(202, "queued", job.job_id())

    async def _job_for(self, decision: Trigger | FollowUp | CiFixRequest, delivery_id: str) -> Job:
        target = decision.target
        common: dict[str, Any] = {
            "installation_id": target.installation_id,
            "repository": target.repository,
            "triggered_by": target.sender,
            "delivery_id": delivery_id,
            "comment_id": target.comment_id,
        }
        if isinstance(decision, CiFixRequest):
            return CiFixJob(pull_number=target.number, requested=True, **common)
        if isinstance(decision, FollowUp):
            return FollowUpJob(
                pull_number=target.number,
                source=decision.source,
                instruction=decision.instruction,
                mode=decision.mode,
                review_id=decision.review_id,
                **common,
            )
        if decision.retry:
            last = await self.registry.last(f"{target.repository}#{target.number}")
            if last is not None and last["name"] == "solve_issue":
                previous = IssueJob.model_validate(last["payload"])
                common |= {"mode": previous.mode, "instruction": previous.instruction}
        else:
            common |= {"mode": decision.mode, "instruction": decision.instruction}
        return IssueJob(issue_number=target.number, **common)

    async def _start(self, job: Job, target: Target) -> Answer:
        queued = await enqueue(self.queue, job)
        if not queued:
            log.info("webhook.joined", job_id=job.job_id())
            return Answer(202, "queued", job.job_id())
        name = job_name(job)
        replaced = await self.registry.start(
            job.work_key(), job.job_id(), name, job.model_dump(mode="json")
        )
        # A new request on an issue supersedes the old run; a pull request's follow-ups queue up.
        if replaced is not None and isinstance(job, IssueJob):
            await self.registry.abort(replaced, "superseded by a newer request")
        log.info("webhook.queued", job_id=job.job_id(), replaced=replaced)
        return Answer(202, "queued", job.job_id(), self._acknowledgement(target))

    async def _cancel(self, cancel: Cancel) -> Answer:
        key = f"{cancel.target.repository}#{cancel.target.number}"
        job_id = await self.registry.cancel(key, cancel.reason)
        log.info("webhook.cancelled", job_id=job_id, reason=cancel.reason)
        detail = f"stopping {job_id}" if job_id else "nothing was running"
        after = self._acknowledgement(cancel.target) if cancel.target.comment_id else None
        return Answer(200, "cancelled", detail, after)

    def _acknowledgement(self, target: Target) -> After | None:
        """The 👀 to put on what asked, unless it got one within ACKNOWLEDGE_EVERY: GitHub keeps
        one 👀 per user anyway, and a burst of deliveries on one issue must not queue a write
        each behind the app's write pacing (bot/throttle.py)."""
        key = (target.repository, target.number, target.comment_id)
        now = time.monotonic()
        if now - self._acknowledged.get(key, -ACKNOWLEDGE_EVERY) < ACKNOWLEDGE_EVERY:
            return None
        if len(self._acknowledged) > 10_000:
            old = [k for k, at in self._acknowledged.items() if now - at >= ACKNOWLEDGE_EVERY]
            for each in old:
                del self._acknowledged[each]
        self._acknowledged[key] = now
        return functools.partial(self._react, target)

    async def _react(self, target: Target) -> None:
        """👀 on the comment or issue that asked; after the answer, so GitHub never waits on it."""
        owner, name = target.repository.split("/", 1)
        try:
            client = await self.github.installation(target.installation_id)
            if target.comment_id is not None and target.comment_kind == "review":
                await client.rest.reactions.async_create_for_pull_request_review_comment(
                    owner, name, target.comment_id, content="eyes"
                )
            elif target.comment_id is not None:
                await client.rest.reactions.async_create_for_issue_comment(
                    owner, name, target.comment_id, content="eyes"
                )
            else:
                await client.rest.reactions.async_create_for_issue(
                    owner, name, target.number, content="eyes"
                )
        except Exception:
            log.exception("webhook.reaction_failed")

    def _post_status(self, target: Target) -> After:
        async def post() -> None:
            key = f"{target.repository}#{target.number}"
            body = redact(
                status_reply(
                    target.number, await self.registry.active(key), await self.registry.status(key)
                )
            )
            owner, name = target.repository.split("/", 1)
            try:
                client = await self.github.installation(target.installation_id)
                await client.rest.issues.async_create_comment(owner, name, target.number, body=body)
            except Exception:
                log.exception("webhook.status_failed")

        return post


async def build_receiver(settings: Settings) -> Receiver:
    queue = await create_pool(redis_settings(settings.queue_url, patience=RECEIVER_PATIENCE))
    metrics = ReceiverMetrics()
    return Receiver(
        metrics=metrics,
        webhook_secret=settings.webhook_secret.get_secret_value().encode(),
        rules=settings.routing_rules(),
        github=GitHubApp(
            settings.app_id,
            settings.private_key_pem(),
            settings.github_api_url,
            retry=RECEIVER_RETRY,
            metrics=metrics.github,
        ),
        queue=queue,
        deliveries=DeliveryLog(queue),
        registry=WorkRegistry(queue),
        ci_settle=settings.ci_settle_seconds,
    )


class ReceiverApp(FastAPI):
    """FastAPI for the pages; a delivery goes straight to the receiver's ASGI endpoint.

    Past FastAPI's middleware, routing, request and response objects: about 140 µs of CPU per
    delivery, as much as the receiver's own handling of an ignored one (benchmarks/README.md,
    "Webhook receiver").
    """

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == WEBHOOK_PATH and scope["method"] == "POST":
            await self.state.receiver(scope, receive, send)
        else:
            await super().__call__(scope, receive, send)


def build_run_viewer(settings: Settings, redis: ArqRedis) -> RunViewer:
    """The run viewer's store and sign-in, from the settings (bot/run_pages.py)."""
    oauth = None
    if settings.github_client_id and settings.github_client_secret:
        oauth = GitHubOAuth(
            settings.github_client_id,
            settings.github_client_secret.get_secret_value(),
            github_web_url(settings.github_api_url),
            settings.github_api_url.rstrip("/"),
        )
    auth = WebAuth(
        redis,
        key=settings.webhook_secret.get_secret_value().encode(),
        admin_token=settings.admin_token.get_secret_value() if settings.admin_token else None,
        oauth=oauth,
        public_url=settings.public_url,
    )
    return RunViewer(RunStore(redis), auth)


def create_app(
    settings: Settings | None = None,
    *,
    receiver: Receiver | None = None,
    run_viewer: RunViewer | None = None,
) -> FastAPI:
    """The ASGI app: the webhook endpoint, the run viewer, Prometheus metrics and a health check.

    Give `settings` to have the app build its receiver at start-up, or a ready `receiver` (and
    `run_viewer`, without which the viewer's pages answer 503).
    """
    if (settings is None) == (receiver is None):
        raise ValueError("pass exactly one of settings and receiver")

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        owned = receiver is None
        handler: Receiver = receiver or await build_receiver(settings)  # type: ignore[arg-type]
        app.state.receiver = handler
        if settings is not None:
            app.state.run_viewer = build_run_viewer(settings, handler.queue)
        catch_up = asyncio.create_task(
            keep_up(handler.github.app_client, handler.queue, handler.failures)
        )
        try:
            yield
        finally:
            catch_up.cancel()
            await mark_seen(handler.queue)
            if owned:  # built here, so closed here
                await handler.queue.aclose()
                await handler.github.close()

    app = ReceiverApp(title="qwen-fix", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.receiver = receiver
    app.state.run_viewer = run_viewer
    run_pages.install(app)

    @app.post(WEBHOOK_PATH, include_in_schema=False)
    async def webhook() -> None:
        """Never called: ReceiverApp hands POST to the receiver first. The route makes FastAPI
        answer other methods on the path with 405."""
        raise AssertionError("ReceiverApp routes webhooks")

    @app.get("/metrics")
    async def metrics(request: Request) -> Response:
        handler: Receiver = request.app.state.receiver
        with contextlib.suppress(Exception):  # a Redis away costs the gauge, not the scrape
            handler.metrics.queue_depth.set(await handler.queue.zcard(default_queue_name))
        content, media_type = handler.metrics.exposition()
        return Response(content, media_type=media_type)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app
