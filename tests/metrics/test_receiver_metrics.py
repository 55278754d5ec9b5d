"""The receiver's `GET /metrics` over real Redis and the GitHub emulator, in-process via ASGI."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from arq import create_pool
from arq.connections import ArqRedis, RedisSettings

from bot.control import WorkRegistry
from bot.deliveries import DeliveryLog
from bot.github import GitHubApp
from bot.receiver import WEBHOOK_PATH, Receiver, create_app
from bot.routing import Rules
from bot.signature import sign
from tests.github_emulator.emulator import GitHubEmulator
from tests.metrics.exposition import Scrape

SECRET = "metrics-secret"
APP_ID = 4242
REPO = "octo-org/gadgets"
LABEL = "qwen-fix"
DELIVERIES = "qwen_fix_webhook_deliveries_total"
LATENCY = "qwen_fix_webhook_seconds"


@dataclass
class App:
    """One receiver app and what it is driven with."""

    emulator: GitHubEmulator
    client: httpx.AsyncClient
    issue: int

    async def post(
        self, event: str, body: bytes, *, delivery: str, signature: str | None = None
    ) -> httpx.Response:
        headers = {
            "X-GitHub-Event": event,
            "X-GitHub-Delivery": delivery,
            "X-Hub-Signature-256": signature or sign(SECRET.encode(), body),
            "Content-Type": "application/json",
        }
        return await self.client.post(WEBHOOK_PATH, content=body, headers=headers)

    def labeled(self, sender: str, label: str = LABEL) -> bytes:
        self.emulator.add_label(REPO, label, issue=self.issue)
        payload = self.emulator.webhook(
            "issues", "labeled", repo=REPO, sender=sender, issue=self.issue, label=label
        )
        return json.dumps(payload).encode()

    async def scrape(self) -> tuple[httpx.Response, Scrape]:
        response = await self.client.get("/metrics")
        return response, Scrape.parse(response.text)


@pytest.fixture
def emulator(tmp_path: Path) -> Iterator[GitHubEmulator]:
    with GitHubEmulator(tmp_path / "github") as emulator:
        yield emulator


@pytest.fixture
async def queue(redis_url: str) -> AsyncIterator[ArqRedis]:
    queue = await create_pool(RedisSettings.from_dsn(redis_url))
    await queue.flushall()
    yield queue
    await queue.aclose()


async def open_app(emulator: GitHubEmulator, queue: ArqRedis, key: str, issue: int) -> App:
    receiver = Receiver(
        webhook_secret=SECRET.encode(),
        rules=Rules(trigger_label=LABEL),
        github=GitHubApp(APP_ID, key, emulator.api_url),
        queue=queue,
        deliveries=DeliveryLog(queue),
        registry=WorkRegistry(queue),
    )
    transport = httpx.ASGITransport(app=create_app(receiver=receiver))
    return App(emulator, httpx.AsyncClient(transport=transport, base_url="http://r"), issue)


@pytest.fixture
async def apps(emulator: GitHubEmulator, queue: ArqRedis) -> AsyncIterator[list[App]]:
    """Two receivers on the same queue, as two receiver processes would be."""
    key = emulator.add_app(APP_ID)
    installation = emulator.add_installation(APP_ID, "octo-org", account_type="Organization")
    emulator.add_repo("octo-org", "gadgets", {"README.md": "gadgets\n"}, installation)
    emulator.set_permission(REPO, "maintainer", "write")
    emulator.set_permission(REPO, "watcher", "read")
    issue = emulator.add_issue(REPO, "Gadgets break", "They do.", "watcher")
    made = [await open_app(emulator, queue, key, issue) for _ in range(2)]
    yield made
    for app in made:
        await app.client.aclose()


async def test_metrics_count_deliveries_by_event_action_and_outcome(apps: list[App]) -> None:
    app = apps[0]
    labeled = app.labeled("maintainer")
    answers: list[Any] = [
        await app.post("issues", labeled, delivery="m-1"),
        await app.post("issues", labeled, delivery="m-1"),
        await app.post("issues", app.labeled("watcher"), delivery="m-2"),
        await app.post("issues", app.labeled("watcher", "bug"), delivery="m-3"),
        await app.post("issues", labeled, delivery="m-4", signature="sha256=" + "0" * 64),
        await app.post("issues", b"{not json", delivery="m-5"),
        await app.post("ping", json.dumps({"zen": "Keep it simple."}).encode(), delivery="m-6"),
    ]
    assert [a.json()["status"] for a in answers] == [
        "queued", "duplicate", "ignored", "ignored", "rejected", "rejected", "ignored",
    ]  # fmt: skip

    response, scrape = await app.scrape()

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=")
    assert scrape.series(DELIVERIES, "event", "action", "outcome") == {
        ("issues", "labeled", "queued"): 1.0,
        ("issues", "labeled", "duplicate"): 1.0,
        ("issues", "labeled", "ignored"): 2.0,
        ("unverified", "", "rejected"): 1.0,
        ("issues", "", "rejected"): 1.0,
        ("ping", "", "ignored"): 1.0,
    }
    assert scrape.series(f"{LATENCY}_count", "outcome") == {
        ("queued",): 1.0,
        ("duplicate",): 1.0,
        ("ignored",): 3.0,
        ("rejected",): 2.0,
    }
    # Every answer came within the largest bucket, and took some time.
    assert scrape.value(f"{LATENCY}_bucket", outcome="ignored", le="5.0") == 3.0
    assert scrape.value(f"{LATENCY}_sum", outcome="queued") > 0


async def test_each_receiver_counts_only_its_own_deliveries(apps: list[App]) -> None:
    first, second = apps
    answer = await first.post("issues", first.labeled("maintainer"), delivery="o-1")
    assert answer.status_code == 202, answer.text

    _, first_scrape = await first.scrape()
    _, second_scrape = await second.scrape()

    assert first_scrape.value(DELIVERIES, event="issues", action="labeled", outcome="queued") == 1
    assert second_scrape.series(DELIVERIES, "event", "action", "outcome") == {}
    assert second_scrape.series(f"{LATENCY}_count", "outcome") == {}
