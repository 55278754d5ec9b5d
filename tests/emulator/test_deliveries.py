"""App webhook deliveries: sent signed, recorded, listed by cursor, and redelivered."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.conftest import free_port
from tests.emulator.conftest import Hub
from tests.github_emulator import signature_of
from tests.github_emulator.server import ServerThread

SECRET = "hook-s3cret"


class Receiver:
    """A webhook endpoint that records what it gets and answers with a chosen status."""

    def __init__(self) -> None:
        self.received: list[tuple[dict[str, str], bytes]] = []
        self.status = 202
        self.server = ServerThread()
        self.url = f"http://127.0.0.1:{self.server.port}/webhook"

    async def hook(self, request: Request) -> Response:
        self.received.append((dict(request.headers), await request.body()))
        return Response('{"ok": true}', status_code=self.status, media_type="application/json")


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    receiver = Receiver()
    receiver.server.start(Starlette(routes=[Route("/webhook", receiver.hook, methods=["POST"])]))
    yield receiver
    receiver.server.stop()


def labeled(hub: Hub) -> dict[str, object]:
    number = hub.emu.add_issue(hub.repo, "Crash", "It crashes", "alice", ("qwen-fix",))
    return hub.emu.webhook(
        "issues", "labeled", repo=hub.repo, issue=number, label="qwen-fix", sender="alice"
    )


def test_a_delivery_is_signed_and_recorded(hub: Hub, receiver: Receiver) -> None:
    hub.emu.set_webhook(hub.app_id, receiver.url, SECRET)
    payload = labeled(hub)
    sent = hub.emu.send("issues", payload)
    ((headers, body),) = receiver.received
    assert headers["x-hub-signature-256"] == signature_of(SECRET, body)
    assert json.loads(body) == payload
    assert headers["x-github-delivery"] == sent["guid"]
    assert headers["x-github-hook-installation-target-id"] == str(hub.app_id)
    assert (sent["status_code"], sent["status"], sent["redelivery"]) == (202, "OK", False)
    assert (sent["event"], sent["action"]) == ("issues", "labeled")
    assert sent["installation_id"] == hub.installation_id
    assert sent["response"]["payload"] == '{"ok": true}'

    fetched = hub.app.rest.apps.get_webhook_delivery(sent["id"])
    assert fetched.parsed_data.guid == sent["guid"]
    assert fetched.json()["request"]["payload"] == payload
    assert fetched.json()["request"]["headers"]["X-GitHub-Event"] == "issues"


def test_a_receiver_that_is_down_is_a_failed_delivery(hub: Hub) -> None:
    hub.emu.set_webhook(hub.app_id, f"http://127.0.0.1:{free_port()}/webhook", SECRET)
    failed = hub.emu.send("issues", labeled(hub))
    assert (failed["status_code"], failed["status"]) == (0, "failed to connect to host")
    assert failed["response"] == {"headers": {}, "payload": None}


def test_deliveries_page_by_cursor_and_filter_by_status(hub: Hub, receiver: Receiver) -> None:
    hub.emu.set_webhook(hub.app_id, receiver.url, SECRET)
    payload = labeled(hub)
    ids = []
    for status in (202, 500, 200):
        receiver.status = status
        ids.append(hub.emu.send("issues", payload)["id"])
    apps = hub.app.rest.apps
    first = apps.list_webhook_deliveries(per_page=2)
    assert [d.id for d in first.parsed_data] == [ids[2], ids[1]], "newest first"
    cursor = first.headers["link"].split("cursor=")[1].split(">")[0]
    assert cursor.startswith("v1_")
    rest = apps.list_webhook_deliveries(per_page=2, cursor=cursor)
    assert [d.id for d in rest.parsed_data] == [ids[0]]
    assert "link" not in rest.headers
    failures = apps.list_webhook_deliveries(status="failure").parsed_data
    assert [(d.id, d.status_code, d.status) for d in failures] == [
        (ids[1], 500, "Invalid HTTP Response: 500")
    ]


def test_a_redelivery_reuses_the_guid(hub: Hub, receiver: Receiver) -> None:
    hub.emu.set_webhook(hub.app_id, receiver.url, SECRET)
    receiver.status = 503
    failed = hub.emu.send("issues", labeled(hub))
    receiver.status = 202
    accepted = hub.app.rest.apps.redeliver_webhook_delivery(failed["id"])
    assert accepted.status_code == 202
    (original, again) = receiver.received
    assert again[0]["x-github-delivery"] == original[0]["x-github-delivery"] == failed["guid"]
    assert again[1] == original[1]
    latest = hub.emu.deliveries(hub.app_id)[-1]
    assert (latest["guid"], latest["redelivery"], latest["status_code"]) == (
        failed["guid"],
        True,
        202,
    )
