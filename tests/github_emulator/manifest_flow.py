"""The GitHub App manifest flow: the confirm pages on the web root, the redirect code, and
`POST /app-manifests/{code}/conversions`, which creates the app and hands over its key."""

from __future__ import annotations

import html
import itertools
import json
import re
import secrets
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs, urlencode

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from tests.github_emulator.auth import new_key_pair
from tests.github_emulator.errors import not_found
from tests.github_emulator.routing import RestRoute, payloads_of, respond, world_of
from tests.github_emulator.state import (
    DEFAULT_PERMISSIONS,
    App,
    CallbackURL,
    ConfirmedManifest,
    World,
    now,
)
from tests.github_emulator.web_session import sign_in_redirect

CODE_LIFETIME = timedelta(hours=1)
APP_IDS = itertools.count(700_001)
"""Process-wide, so githubkit's per-process cache of JWTs by app id never mixes two apps."""


def manifest_code(world: World, manifest: dict[str, Any], owner: str) -> str:
    """The `code` GitHub appends to `redirect_url` once the user confirms the manifest."""
    code = secrets.token_hex(10)
    with world.lock:
        world.manifest_codes[code] = ConfirmedManifest(manifest, owner)
    return code


def create_app(world: World, manifest: dict[str, Any], owner: str) -> tuple[App, str]:
    """The app a manifest describes, with a fresh key pair; returns it and its private key."""
    private_pem, public_pem = new_key_pair()
    name = str(manifest.get("name") or f"app-{secrets.token_hex(3)}")
    hook = manifest.get("hook_attributes") or {}
    app = App(
        id=next(APP_IDS),
        slug=re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-"),
        owner=world.user(owner),
        public_key_pem=public_pem,
        name=name,
        permissions=dict(manifest.get("default_permissions") or DEFAULT_PERMISSIONS),
        events=list(manifest.get("default_events") or []),
        webhook_url=hook.get("url") if hook.get("active", True) else None,
        webhook_secret=secrets.token_hex(20),
        callback_urls=[CallbackURL(str(url)) for url in manifest.get("callback_urls") or []],
    )
    with world.lock:
        world.apps[app.id] = app
    return app, private_pem


async def convert(request: Request) -> Response:
    """Exchange a manifest code (once, within an hour) for the new app's credentials."""
    world = world_of(request)
    with world.lock:
        pending = world.manifest_codes.pop(str(request.path_params["code"]), None)
    if pending is None or pending.confirmed_at + CODE_LIFETIME < now():
        raise not_found()
    app, pem = create_app(world, pending.manifest, pending.owner)
    body = {
        **payloads_of(request).app(app),
        "client_id": app.client_id,
        "client_secret": app.client_secret,
        "webhook_secret": app.webhook_secret,
        "pem": pem,
    }
    return respond(body, status=201)


async def new_app_page(request: Request) -> Response:
    """The page a browser reaches; its form posts the manifest back here."""
    if world_of(request).web_login is None:
        return sign_in_redirect(request)
    org = request.path_params.get("org")
    heading = (
        f"Register new GitHub App for {html.escape(org)}" if org else "Register new GitHub App"
    )
    page = (
        f"<!doctype html><title>{heading}</title><h1>{heading}</h1>"
        f'<form method="post" action="{html.escape(str(request.url))}">'
        '<textarea name="manifest"></textarea><button>Create GitHub App</button></form>'
    )
    return HTMLResponse(page)


async def confirm_manifest(request: Request) -> Response:
    """The user confirms the posted manifest: redirect to `redirect_url?code=&state=`."""
    world = world_of(request)
    if world.web_login is None:
        return sign_in_redirect(request)
    form = parse_qs((await request.body()).decode())
    try:
        manifest = json.loads(form.get("manifest", [""])[0])
    except ValueError:
        manifest = None
    if not isinstance(manifest, dict) or not manifest.get("url"):
        return HTMLResponse("<h1>Invalid GitHub App configuration</h1>", status_code=422)
    redirect_url = manifest.get("redirect_url")
    if not isinstance(redirect_url, str) or not redirect_url:
        return HTMLResponse("<h1>The manifest has no redirect_url</h1>", status_code=422)
    owner = request.path_params.get("org") or world.web_login
    if request.path_params.get("org"):
        world.user(owner, "Organization")
    query = {"code": manifest_code(world, manifest, owner)}
    if "state" in request.query_params:
        query["state"] = request.query_params["state"]
    joiner = "&" if "?" in redirect_url else "?"
    return RedirectResponse(f"{redirect_url}{joiner}{urlencode(query)}", status_code=302)


rest_routes = [RestRoute("POST", "/app-manifests/{code}/conversions", convert, {201, 404})]
web_routes = [
    Route(path, endpoint, methods=[method])
    for path in ("/settings/apps/new", "/organizations/{org}/settings/apps/new")
    for method, endpoint in (("GET", new_app_page), ("POST", confirm_manifest))
]
