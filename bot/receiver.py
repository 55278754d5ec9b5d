"""The webhook receiver: verify, de-duplicate, route, gate on permission, enqueue, answer fast."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import structlog
from arq import create_pool
from arq.connections import ArqRedis, RedisSettings
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from bot.deliveries import DeliveryLog
from bot.github import GitHubApp, can_trigger
from bot.jobs import IssueJob, enqueue
from bot.routing import Ignore, MalformedPayload, Trigger, route
from bot.settings import Settings
from bot.signature import is_valid_signature

log = structlog.get_logger("qwen_fix.receiver")

WEBHOOK_PATH = "/webhooks/github"


@dataclass
class Receiver:
    """What a delivery is handled with; built once per process."""

    webhook_secret: bytes
    trigger_label: str
    github: GitHubApp
    queue: ArqRedis
    deliveries: DeliveryLog

    async def handle(self, request: Request) -> JSONResponse:
        body = await request.body()
        if not is_valid_signature(
            self.webhook_secret, body, request.headers.get("x-hub-signature-256")
        ):
            log.warning("webhook.rejected", reason="bad or missing X-Hub-Signature-256")
            return _answer(401, "rejected", "bad or missing X-Hub-Signature-256")
        event = request.headers.get("x-github-event")
        delivery_id = request.headers.get("x-github-delivery")
        if not event or not delivery_id:
            return _answer(400, "rejected", "X-GitHub-Event and X-GitHub-Delivery are required")
        with structlog.contextvars.bound_contextvars(delivery_id=delivery_id, event=event):
            return await self._handle_event(event, delivery_id, body)

    async def _handle_event(self, event: str, delivery_id: str, body: bytes) -> JSONResponse:
        try:
            payload = json.loads(body)
            if not isinstance(payload, dict):
                raise MalformedPayload("payload is not a JSON object")
            decision = route(event, payload, trigger_label=self.trigger_label)
        except (ValueError, MalformedPayload) as exc:
            reason = str(exc) if isinstance(exc, MalformedPayload) else "body is not valid JSON"
            log.warning("webhook.malformed", reason=reason)
            return _answer(400, "rejected", reason)
        if isinstance(decision, Ignore):
            log.info("webhook.ignored", action=payload.get("action"), reason=decision.reason)
            return _answer(200, "ignored", decision.reason)
        if not await self.deliveries.claim(delivery_id):
            log.info("webhook.duplicate")
            return _answer(200, "duplicate", "this delivery was already handled")
        try:
            return await self._trigger(decision, delivery_id)
        except Exception:
            await self.deliveries.release(delivery_id)
            log.exception("webhook.failed")
            return _answer(503, "failed", "could not queue the job; GitHub may redeliver")

    async def _trigger(self, trigger: Trigger, delivery_id: str) -> JSONResponse:
        bound = log.bind(repo=trigger.repository, issue=trigger.issue_number, sender=trigger.sender)
        permission = await self.github.permission(
            trigger.installation_id, trigger.repository, trigger.sender
        )
        if not can_trigger(permission):
            reason = f"{trigger.sender} has {permission} permission; write is needed"
            bound.info("webhook.ignored", reason=reason)
            return _answer(200, "ignored", reason)
        job = IssueJob(
            installation_id=trigger.installation_id,
            repository=trigger.repository,
            issue_number=trigger.issue_number,
            triggered_by=trigger.sender,
            delivery_id=delivery_id,
            mode=trigger.mode,
        )
        queued = await enqueue(self.queue, job)
        bound.info("webhook.queued", job_id=job.job_id(), new=queued)
        return _answer(202, "queued", job.job_id())


def _answer(status: int, outcome: str, detail: str) -> JSONResponse:
    content: dict[str, Any] = {"status": outcome, "detail": detail}
    return JSONResponse(content, status_code=status)


async def build_receiver(settings: Settings) -> Receiver:
    queue = await create_pool(RedisSettings.from_dsn(settings.redis_url or "redis://127.0.0.1"))
    return Receiver(
        webhook_secret=settings.webhook_secret.get_secret_value().encode(),
        trigger_label=settings.trigger_label,
        github=GitHubApp(settings.app_id, settings.private_key_pem(), settings.github_api_url),
        queue=queue,
        deliveries=DeliveryLog(queue),
    )


def create_app(settings: Settings | None = None, *, receiver: Receiver | None = None) -> FastAPI:
    """The ASGI app: the webhook endpoint and a health check.

    Give `settings` to have the app build its receiver at start-up, or a ready `receiver`.
    """
    if (settings is None) == (receiver is None):
        raise ValueError("pass exactly one of settings and receiver")

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        owned = receiver is None
        app.state.receiver = receiver or await build_receiver(settings)  # type: ignore[arg-type]
        try:
            yield
        finally:
            if owned:
                await app.state.receiver.queue.aclose()

    app = FastAPI(title="qwen-fix", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.receiver = receiver

    @app.post(WEBHOOK_PATH)
    async def webhook(request: Request) -> JSONResponse:
        receiver: Receiver = request.app.state.receiver
        return await receiver.handle(request)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app
