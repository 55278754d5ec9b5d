"""Who is looking at the run viewer, and which repositories' runs they may see.

- People sign in with GitHub through the App's own OAuth credentials (GITHUB_CLIENT_ID and
  GITHUB_CLIENT_SECRET). Their user token stays in Redis, with the session; the browser holds
  only the session's random id, signed, in an HttpOnly, SameSite=Lax cookie.
- A person sees the runs of a repository when GitHub answers their token's request for it (a
  user-to-server token sees what both the person and the installation can see), asked once
  per ACCESS_TTL seconds per person and repository.
- ADMIN_TOKEN, sent as `Authorization: Bearer …` (machines) or through the sign-in page's form
  (break-glass), sees every run.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass
from urllib.parse import urlencode, urlsplit

import httpx
import structlog
from redis.asyncio import Redis
from starlette.requests import Request

log = structlog.get_logger("qwen_fix.web_auth")

SESSION_COOKIE = "qwen_fix_session"
STATE_COOKIE = "qwen_fix_sign_in"
SESSION_TTL = 8 * 3600
"""Seconds a sign-in lasts: a GitHub App's user token expires after 8 hours too."""
STATE_TTL = 600
ACCESS_TTL = 60.0
SESSIONS = "qwen-fix:web-session:"
ADMIN = "admin"


class ForgedCookie(Exception):
    """A session cookie whose signature does not hold: answered 401, never trusted."""


@dataclass(frozen=True, slots=True)
class Viewer:
    login: str
    """The GitHub login, or `admin` for the operator's token."""
    token: str | None = None
    """The person's user-to-server token; None for the operator."""

    @property
    def admin(self) -> bool:
        return self.token is None


@dataclass(frozen=True, slots=True)
class GitHubOAuth:
    client_id: str
    client_secret: str
    web_url: str
    """https://github.com, or an Enterprise Server's root."""
    api_url: str


class WebAuth:
    def __init__(
        self,
        redis: Redis,
        *,
        key: bytes,
        admin_token: str | None,
        oauth: GitHubOAuth | None,
        public_url: str | None,
    ) -> None:
        self._redis = redis
        self._key = hashlib.sha256(b"qwen-fix run viewer\0" + key).digest()
        self._admin_token = admin_token
        self.oauth = oauth
        self.public_url = public_url
        self.secure = bool(public_url and public_url.startswith("https://"))
        self._access: dict[tuple[str, str], tuple[bool, float]] = {}

    # --- who is asking ---------------------------------------------------------------------

    async def viewer(self, request: Request) -> Viewer | None:
        """The signed-in viewer; None when anonymous. Raises ForgedCookie for a bad cookie."""
        authorization = request.headers.get("authorization", "")
        if authorization.lower().startswith("bearer "):
            return Viewer(ADMIN) if self.is_admin_token(authorization[7:].strip()) else None
        cookie = request.cookies.get(SESSION_COOKIE)
        if not cookie:
            return None
        session_id = self.unsign(cookie)
        if session_id is None:
            raise ForgedCookie("the session cookie's signature does not hold")
        value = await self._redis.get(SESSIONS + session_id)
        if not value:
            return None
        data = json.loads(value)
        return Viewer(data["login"], data.get("token"))

    def is_admin_token(self, token: str) -> bool:
        return bool(self._admin_token) and hmac.compare_digest(
            token.encode(), (self._admin_token or "").encode()
        )

    async def may_read(self, viewer: Viewer, repository: str) -> bool:
        """Whether GitHub lets the viewer read `repository` (asked with their own token)."""
        if viewer.admin:
            return True
        assert viewer.token is not None and self.oauth is not None
        key = (viewer.login, repository.casefold())
        cached = self._access.get(key)
        if cached is not None and time.monotonic() - cached[1] < ACCESS_TTL:
            return cached[0]
        allowed = False
        try:
            async with httpx.AsyncClient(timeout=10) as client:
                answer = await client.get(
                    f"{self.oauth.api_url}/repos/{repository}",
                    headers={
                        "Authorization": f"Bearer {viewer.token}",
                        "Accept": "application/vnd.github+json",
                    },
                )
            allowed = answer.status_code == 200
        except httpx.HTTPError:
            log.warning("web_auth.access_unknown", repo=repository, exc_info=True)
            return False  # not cached: GitHub may answer next time
        if len(self._access) > 50_000:
            self._access.clear()
        self._access[key] = (allowed, time.monotonic())
        return allowed

    # --- sessions ----------------------------------------------------------------------------

    async def new_session(self, login: str, token: str | None) -> str:
        """A session in Redis; returns the signed cookie value that names it."""
        session_id = secrets.token_urlsafe(32)
        value = json.dumps({"login": login, "token": token})
        await self._redis.set(SESSIONS + session_id, value, ex=SESSION_TTL)
        return self.sign(session_id)

    async def end_session(self, cookie: str | None) -> None:
        session_id = self.unsign(cookie or "")
        if session_id is not None:
            await self._redis.delete(SESSIONS + session_id)

    def sign(self, value: str) -> str:
        mac = hmac.new(self._key, value.encode(), hashlib.sha256).digest()
        return f"{value}.{base64.urlsafe_b64encode(mac).decode().rstrip('=')}"

    def unsign(self, signed: str) -> str | None:
        value, _, _mac = signed.rpartition(".")
        if not value or len(signed) > 512:
            return None
        return value if hmac.compare_digest(self.sign(value), signed) else None

    def cookie_options(self, max_age: int) -> dict[str, object]:
        return {
            "max_age": max_age,
            "httponly": True,
            "samesite": "lax",
            "secure": self.secure,
            "path": "/",
        }

    # --- signing in with GitHub -------------------------------------------------------------

    def authorize_url(self, request: Request, next_path: str) -> tuple[str, str]:
        """(GitHub's authorize URL, the signed state cookie to set) for a sign-in that comes
        back to `next_path`."""
        assert self.oauth is not None
        state = secrets.token_urlsafe(24)
        cookie = self.sign(
            base64.urlsafe_b64encode(
                json.dumps({"state": state, "next": next_path, "at": time.time()}).encode()
            ).decode()
        )
        query = urlencode(
            {
                "client_id": self.oauth.client_id,
                "redirect_uri": self.callback_url(request),
                "state": state,
                "allow_signup": "false",
            }
        )
        return f"{self.oauth.web_url}/login/oauth/authorize?{query}", cookie

    def callback_url(self, request: Request) -> str:
        root = self.public_url or str(request.base_url).rstrip("/")
        return f"{root}/login/callback"

    async def finish_sign_in(
        self, request: Request, code: str, state: str, cookie: str | None
    ) -> tuple[str, str]:
        """Check the state against the cookie, trade the code for a user token, learn the
        login; returns (the session cookie, where to go). Raises SignInFailed."""
        assert self.oauth is not None
        unsigned = self.unsign(cookie or "")
        if unsigned is None:
            raise SignInFailed("the sign-in was not started here, or took too long")
        saved = json.loads(base64.urlsafe_b64decode(unsigned.encode()))
        fresh = time.time() - float(saved.get("at", 0)) < STATE_TTL
        if not fresh or not hmac.compare_digest(str(saved.get("state")), state):
            raise SignInFailed("the sign-in's state does not match; start again")
        async with httpx.AsyncClient(timeout=15) as client:
            answer = await client.post(
                f"{self.oauth.web_url}/login/oauth/access_token",
                data={
                    "client_id": self.oauth.client_id,
                    "client_secret": self.oauth.client_secret,
                    "code": code,
                    "redirect_uri": self.callback_url(request),
                },
                headers={"Accept": "application/json"},
            )
            grant = answer.json() if answer.status_code == 200 else {}
            token = grant.get("access_token")
            if not isinstance(token, str):
                reason = grant.get("error_description") or grant.get("error") or answer.status_code
                raise SignInFailed(f"GitHub did not grant a token: {reason}")
            user = await client.get(
                f"{self.oauth.api_url}/user",
                headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
            )
        if user.status_code != 200:
            raise SignInFailed(f"GitHub did not say who signed in (HTTP {user.status_code})")
        login = str(user.json()["login"])
        log.info("web_auth.signed_in", login=login)
        return await self.new_session(login, token), safe_next(str(saved.get("next", "")))


def github_web_url(api_url: str) -> str:
    """GitHub's web root for its REST root: api.github.com, api.TENANT.ghe.com, HOST/api/v3."""
    api = api_url.rstrip("/")
    parts = urlsplit(api)
    host = parts.hostname or ""
    if host == "api.github.com":
        return "https://github.com"
    if host.startswith("api.") and host.endswith(".ghe.com"):
        return f"{parts.scheme}://{parts.netloc.removeprefix('api.')}"
    return api.removesuffix("/api/v3")


class SignInFailed(Exception):
    """Why signing in with GitHub did not work, in words for the person."""


def safe_next(path: str) -> str:
    """Where to go after signing in: a path of the run viewer, never another site."""
    parts = urlsplit(path)
    if parts.scheme or parts.netloc or not path.startswith("/runs") or "\\" in path:
        return "/runs"
    return path
