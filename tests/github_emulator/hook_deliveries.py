"""App webhook deliveries as GitHub's hookshot makes them: signed POST, then a delivery record."""

from __future__ import annotations

import time

import httpx

from tests.github_emulator import webhooks
from tests.github_emulator.payloads import JSON
from tests.github_emulator.state import App, HookDelivery, World

TIMEOUT = 10.0
"""GitHub gives up on a receiver after 10 seconds."""


def send(
    world: World, app: App, event: str, payload: JSON, guid: str | None = None
) -> HookDelivery:
    """POST one signed delivery to the app's webhook URL and record how it went."""
    if app.webhook_url is None or app.webhook_secret is None:
        raise ValueError(f"app {app.id} has no webhook: set_webhook first")
    body, headers = webhooks.signed_delivery(event, payload, app.webhook_secret, guid)
    headers["X-GitHub-Hook-Installation-Target-ID"] = str(app.id)
    started = time.monotonic()
    outcome = post(app.webhook_url, body, headers)
    installation, repository = payload.get("installation"), payload.get("repository")
    delivery = HookDelivery(
        id=world.new_id(),
        guid=headers["X-GitHub-Delivery"],
        app_id=app.id,
        url=app.webhook_url,
        event=event,
        action=payload.get("action"),
        installation_id=installation.get("id") if isinstance(installation, dict) else None,
        repository_id=repository.get("id") if isinstance(repository, dict) else None,
        redelivery=guid is not None,
        request_headers=headers,
        request_payload=payload,
        status_code=outcome[0],
        status=outcome[1],
        duration=round(time.monotonic() - started, 3),
        response_headers=outcome[2],
        response_body=outcome[3],
    )
    with world.lock:
        world.deliveries.append(delivery)
    return delivery


def post(
    url: str, body: bytes, headers: dict[str, str]
) -> tuple[int, str, dict[str, str], str | None]:
    """(status_code, status, response headers, response body); status_code 0 when none came."""
    try:
        response = httpx.post(url, content=body, headers=headers, timeout=TIMEOUT)
    except httpx.ConnectError:
        return 0, "failed to connect to host", {}, None
    except httpx.TimeoutException:
        return 0, "timed out", {}, None
    ok = 200 <= response.status_code < 300
    status = "OK" if ok else f"Invalid HTTP Response: {response.status_code}"
    return response.status_code, status, dict(response.headers), response.text


def succeeded(delivery: HookDelivery) -> bool:
    return 200 <= delivery.status_code < 300
