"""REST routes on an app's webhook deliveries: list (cursor pages), one, redeliver."""

from __future__ import annotations

import asyncio

from starlette.requests import Request
from starlette.responses import Response

from tests.github_emulator import hook_deliveries
from tests.github_emulator.errors import GitHubError, not_found, validation_failed
from tests.github_emulator.rest_app import authenticated_app
from tests.github_emulator.routing import RestRoute, int_param, payloads_of, respond, world_of
from tests.github_emulator.state import App, HookDelivery

CURSOR_PREFIX = "v1_"


def deliveries_of(request: Request, app: App) -> list[HookDelivery]:
    """The app's deliveries, newest first."""
    chosen = [d for d in world_of(request).deliveries if d.app_id == app.id]
    return sorted(chosen, key=lambda d: d.id, reverse=True)


async def list_deliveries(request: Request) -> Response:
    deliveries = deliveries_of(request, authenticated_app(request))
    query = request.query_params
    status = query.get("status")
    if status not in (None, "success", "failure"):
        raise validation_failed("HookDelivery", "status")
    if status is not None:
        wanted = status == "success"
        deliveries = [d for d in deliveries if hook_deliveries.succeeded(d) == wanted]
    cursor = query.get("cursor")
    if cursor:
        start = cursor.removeprefix(CURSOR_PREFIX)
        if not cursor.startswith(CURSOR_PREFIX) or not start.isdigit():
            raise GitHubError(400, "Invalid cursor")
        deliveries = [d for d in deliveries if d.id <= int(start)]
    per_page = int(query["per_page"]) if query.get("per_page", "").isdigit() else 30
    per_page = min(max(per_page, 1), 100)
    page, rest = deliveries[:per_page], deliveries[per_page:]
    headers = {}
    if rest:
        url = request.url.remove_query_params("cursor").include_query_params(
            cursor=f"{CURSOR_PREFIX}{rest[0].id}"
        )
        headers["Link"] = f'<{url}>; rel="next"'
    payloads = payloads_of(request)
    return respond([payloads.delivery_item(d) for d in page], headers=headers)


def delivery_of(request: Request) -> HookDelivery:
    app = authenticated_app(request)
    wanted = int_param(request, "delivery_id")
    for delivery in deliveries_of(request, app):
        if delivery.id == wanted:
            return delivery
    raise not_found()


async def get_delivery(request: Request) -> Response:
    return respond(payloads_of(request).delivery(delivery_of(request)))


async def redeliver(request: Request) -> Response:
    """Send the delivery again, same guid, to the app's current URL; GitHub answers 202."""
    delivery = delivery_of(request)
    world = world_of(request)
    app = world.apps[delivery.app_id]
    await asyncio.to_thread(
        hook_deliveries.send,
        world,
        app,
        delivery.event,
        delivery.request_payload,
        delivery.guid,
    )
    return respond({}, status=202)


DELIVERIES = "/app/hook/deliveries"

routes = [
    RestRoute("GET", DELIVERIES, list_deliveries, {200, 400, 401, 422}),
    RestRoute("GET", f"{DELIVERIES}/{{delivery_id}}", get_delivery, {200, 401, 404}),
    RestRoute("POST", f"{DELIVERIES}/{{delivery_id}}/attempts", redeliver, {202, 401, 404}),
]
