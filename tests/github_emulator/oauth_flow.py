"""GitHub's OAuth web flow for a GitHub App's user-to-server tokens, on the web root:
`GET /login/oauth/authorize` sends the signed-in browser back to a callback URL with a code, and
`POST /login/oauth/access_token` trades the code (or a refresh token) for a `ghu_` token."""

from __future__ import annotations

import base64
import hashlib
import hmac
import html
import json
import secrets
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from tests.github_emulator.auth import (
    REFRESH_TOKEN_LIFETIME,
    USER_TOKEN_LIFETIME,
    issue_user_token,
    revoke_user_token,
)
from tests.github_emulator.routing import world_of
from tests.github_emulator.state import App, CallbackURL, OAuthCode, UserToken, World, now
from tests.github_emulator.web_session import page, sign_in_redirect

CODE_LIFETIME = timedelta(minutes=10)
TROUBLESHOOTING = "https://docs.github.com/apps/managing-oauth-apps/"
TOKEN_ERRORS = {
    "incorrect_client_credentials": (
        "The client_id and/or client_secret passed are incorrect.",
        "troubleshooting-oauth-app-access-token-request-errors/#incorrect-client-credentials",
    ),
    "redirect_uri_mismatch": (
        "The redirect_uri MUST match the registered callback URL for this application.",
        "troubleshooting-authorization-request-errors/#redirect-uri-mismatch2",
    ),
    "bad_verification_code": (
        "The code passed is incorrect or expired.",
        "troubleshooting-oauth-app-access-token-request-errors/#bad-verification-code",
    ),
    "bad_refresh_token": (
        "The refresh token passed is incorrect or expired.",
        "troubleshooting-oauth-app-access-token-request-errors/#bad-refresh-token",
    ),
    "unsupported_grant_type": (
        "The grant type is not supported.",
        "troubleshooting-oauth-app-access-token-request-errors/#unsupported-grant-type",
    ),
}
"""The errors GitHub answers a token request with (HTTP 200): description, docs anchor."""
PLAIN_REFUSED = "Only the S256 code_challenge_method is supported."
NOT_ASSOCIATED = (
    "The redirect_uri is not associated with this application. The application might be "
    "misconfigured or could be trying to redirect you to a website you weren't expecting."
)


class TokenRequestRefused(Exception):
    """A token request GitHub answers with `error`, `error_description` and `error_uri`."""

    def __init__(self, error: str) -> None:
        super().__init__(error)
        self.error = error

    def body(self) -> dict[str, object]:
        description, anchor = TOKEN_ERRORS[self.error]
        return {"error": self.error, "error_description": description,
                "error_uri": TROUBLESHOOTING + anchor}  # fmt: skip


# --- authorize --------------------------------------------------------------------------------


async def authorize(request: Request) -> Response:
    """As after the user's first consent: straight back to the callback with a code."""
    world = world_of(request)
    params = request.query_params
    app = app_of_client(world, params.get("client_id", ""))
    if app is None:
        return page("Page not found", "<p>This is not the web page you are looking for.</p>", 404)
    redirect_uri = callback_for(app, params.get("redirect_uri"))
    if redirect_uri is None:
        return page("Be careful!", f"<p>{html.escape(NOT_ASSOCIATED)}</p>")
    login, wanted = world.web_login, params.get("login")
    if login is None or (wanted and wanted.lower() != login.lower()):
        extra = {"client_id": app.client_id, **({"login": wanted} if wanted else {})}
        return sign_in_redirect(request, **extra)
    state = {"state": params["state"]} if "state" in params else {}
    challenge = params.get("code_challenge") or None
    if challenge is not None and params.get("code_challenge_method") != "S256":
        refusal = {"error": "invalid_request", "error_description": PLAIN_REFUSED}
        return back_to(redirect_uri, {**refusal, **state})
    code = secrets.token_hex(10)
    grant = OAuthCode(app, world.user(login), redirect_uri, challenge, now() + CODE_LIFETIME)
    with world.lock:
        world.oauth_codes[code] = grant
    return back_to(redirect_uri, {"code": code, **state})


def back_to(redirect_uri: str, query: dict[str, str]) -> Response:
    return RedirectResponse(f"{redirect_uri}?{urlencode(query)}", status_code=302)


def app_of_client(world: World, client_id: str) -> App | None:
    return next((app for app in world.apps.values() if app.client_id == client_id), None)


def callback_for(app: App, requested: str | None) -> str | None:
    """The requested callback if one of the app's allows it, else the first when none is
    requested; None: the request is refused."""
    if not requested:
        return app.callback_urls[0].url if app.callback_urls else None
    return requested if any(allows(callback, requested) for callback in app.callback_urls) else None


def allows(callback: CallbackURL, url: str) -> bool:
    """An exact match; with wildcard matching, also a subdomain or subdirectory on the same
    scheme and port, as GitHub documents it."""
    if url == callback.url:
        return True
    if not callback.wildcard:
        return False
    want, got = urlsplit(callback.url), urlsplit(url)
    try:
        same_port = want.port == got.port
    except ValueError:
        return False
    host, asked = want.hostname or "", got.hostname or ""
    same_host = bool(host) and (asked == host or asked.endswith("." + host))
    base = want.path.rstrip("/")
    below = got.path == want.path or got.path.startswith(base + "/")
    bare = not got.query and not got.fragment
    return want.scheme == got.scheme and same_port and same_host and below and bare


# --- access token -----------------------------------------------------------------------------


async def access_token(request: Request) -> Response:
    """A grant, or an error, both with HTTP 200; JSON only when the client accepts it."""
    params = await token_request_params(request)
    try:
        body: dict[str, object] = grant_of(exchange(world_of(request), params))
    except TokenRequestRefused as refused:
        body = refused.body()
    if "application/json" in request.headers.get("accept", ""):
        return JSONResponse(body)
    return Response(urlencode(body), media_type="application/x-www-form-urlencoded; charset=utf-8")


async def token_request_params(request: Request) -> dict[str, str]:
    """Query, form or JSON parameters, as GitHub takes them all."""
    params = dict(request.query_params)
    raw = (await request.body()).decode(errors="replace")
    if "json" in request.headers.get("content-type", ""):
        try:
            body: Any = json.loads(raw)
        except ValueError:
            body = {}
        if isinstance(body, dict):
            params.update({key: str(value) for key, value in body.items()})
    else:
        params.update({key: values[0] for key, values in parse_qs(raw).items()})
    return params


def exchange(world: World, params: dict[str, str]) -> UserToken:
    grant_type = params.get("grant_type") or "authorization_code"
    if grant_type not in ("authorization_code", "refresh_token"):
        raise TokenRequestRefused("unsupported_grant_type")
    app = client_app(world, params)
    if grant_type == "refresh_token":
        return redeem_refresh_token(world, app, params.get("refresh_token", ""))
    return redeem_code(world, app, params)


def client_app(world: World, params: dict[str, str]) -> App:
    app = app_of_client(world, params.get("client_id", ""))
    secret = params.get("client_secret", "").encode()
    if app is None or not hmac.compare_digest(secret, app.client_secret.encode()):
        raise TokenRequestRefused("incorrect_client_credentials")
    return app


def redeem_code(world: World, app: App, params: dict[str, str]) -> UserToken:
    """Once: a code found for this app is spent whatever else the request gets wrong."""
    with world.lock:
        code = world.oauth_codes.get(params.get("code", ""))
        if code is None or code.app is not app:
            raise TokenRequestRefused("bad_verification_code")
        del world.oauth_codes[params["code"]]
    if code.expires_at <= now():
        raise TokenRequestRefused("bad_verification_code")
    redirect_uri = params.get("redirect_uri")
    if redirect_uri and redirect_uri != code.redirect_uri:
        raise TokenRequestRefused("redirect_uri_mismatch")
    verifier = params.get("code_verifier", "")
    if code.code_challenge is not None and s256(verifier) != code.code_challenge:
        raise TokenRequestRefused("bad_verification_code")
    return issue_user_token(world, app, code.user)


def redeem_refresh_token(world: World, app: App, refresh_token: str) -> UserToken:
    """A new pair; the old refresh token and the old user token stop working."""
    with world.lock:
        old = world.refresh_tokens.get(refresh_token)
        if old is None or old.app is not app or old.refresh_expires_at <= now():
            raise TokenRequestRefused("bad_refresh_token")
        revoke_user_token(world, old)
    return issue_user_token(world, app, old.user)


def s256(verifier: str) -> str:
    """The PKCE S256 challenge of a verifier: unpadded base64url of its SHA-256."""
    digest = hashlib.sha256(verifier.encode()).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def grant_of(token: UserToken) -> dict[str, object]:
    return {
        "access_token": token.value,
        "expires_in": int(USER_TOKEN_LIFETIME.total_seconds()),
        "refresh_token": token.refresh_token,
        "refresh_token_expires_in": int(REFRESH_TOKEN_LIFETIME.total_seconds()),
        "scope": "",
        "token_type": "bearer",
    }


routes = [
    Route("/login/oauth/authorize", authorize, methods=["GET"]),
    Route("/login/oauth/access_token", access_token, methods=["POST"]),
]
