"""The GitHub client: app auth, cached installation tokens, installation clients, permissions."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from datetime import datetime

import httpx
import structlog
from githubkit import AppAuthStrategy, GitHub, TokenAuthStrategy
from githubkit.cache.mem_cache import MemCacheStrategy
from githubkit.exception import RequestFailed
from githubkit.typing import RetryDecisionFunc

from bot.github_metrics import GitHubMetrics
from bot.redaction import register_secret
from bot.throttle import RETRY, WriteThrottler

log = structlog.get_logger("qwen_fix.github")

WRITE_PERMISSIONS = frozenset({"admin", "maintain", "write"})
"""Permission levels allowed to start work: labelling alone needs only triage."""

TOKEN_REFRESH_MARGIN = 300.0
"""Seconds before expiry at which a cached installation token is replaced."""

PERMISSION_TTL = 60.0
"""Seconds a permission answer is trusted; a revoked collaborator loses access within this."""


class SharedTransport(httpx.AsyncBaseTransport):
    """One connection pool, and one TLS context, for every GitHub client of an app.

    githubkit makes an httpx client per request and closes it after. Without a transport given,
    each of those loads the CA bundle (27 ms of CPU here) and opens a new connection; closing a
    client must not close the pool the others share, so only `close` does. Proxies set in the
    environment still apply: httpx routes their URLs to transports of its own.
    """

    def __init__(self, *, backoff: float = 1.0, metrics: GitHubMetrics | None = None) -> None:
        self._pool = httpx.AsyncHTTPTransport()
        self._backoff = backoff
        self.metrics = metrics

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """The answer; a dropped connection is retried (TRANSPORT_RETRIES times, backing off)
        when sending again cannot do a write twice (githubkit retries 5xx and rate limits)."""
        for attempt in range(TRANSPORT_RETRIES + 1):
            try:
                response = await self._pool.handle_async_request(request)
                # Read here, so a connection dropped in the middle of the body is retried too
                # (GitHub's answers are JSON documents, not streams).
                await response.aread()
                if self.metrics is not None:
                    self.metrics.answered(request, response)
                return response
            except httpx.TransportError as exc:
                if self.metrics is not None:
                    self.metrics.failed(request)
                if attempt == TRANSPORT_RETRIES or not _safe_to_resend(request, exc):
                    raise
                log.warning(
                    "github.connection_failed", method=request.method, path=request.url.path,
                    error=type(exc).__name__, attempt=attempt + 1,
                )  # fmt: skip
                await asyncio.sleep(self._backoff * 2**attempt)
        raise AssertionError("unreachable")

    async def aclose(self) -> None:
        pass

    async def close(self) -> None:
        await self._pool.aclose()


TRANSPORT_RETRIES = 3
IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "PATCH"})
"""Methods that do the same however often they are sent (GitHub's PATCH routes set fields)."""


def _safe_to_resend(request: httpx.Request, error: httpx.TransportError) -> bool:
    """A request GitHub cannot have acted on (no connection was made), or one that does the
    same however often it is sent. A POST whose answer was lost may have been done
    (a comment posted): sending it again could do it twice, so its error stands."""
    if isinstance(error, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout):
        return True
    return request.method in IDEMPOTENT


def can_trigger(permission: str) -> bool:
    return permission in WRITE_PERMISSIONS


@dataclass(frozen=True, slots=True)
class InstallationToken:
    token: str
    expires_at: float
    """Unix time."""

    def fresh(self, now: float) -> bool:
        return now < self.expires_at - TOKEN_REFRESH_MARGIN


class GitHubApp:
    """One GitHub App: signs app JWTs, mints and caches installation tokens, builds clients.

    The token is handed to the worker's git commands and API clients only, never to a sandbox.
    """

    def __init__(
        self,
        app_id: int,
        private_key_pem: str,
        api_url: str,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        retry: RetryDecisionFunc = RETRY,
        metrics: GitHubMetrics | None = None,
    ) -> None:
        """`retry`: how failed requests are tried again (the receiver's must be brief);
        `metrics`: where the app's own transport counts GitHub's answers."""
        self.app_id = app_id
        self._retry = retry
        self.api_url = api_url.rstrip("/") + "/"
        self._own_transport = SharedTransport(metrics=metrics) if transport is None else None
        self._transport = transport or self._own_transport
        # githubkit's default cache is process-wide and keys the app JWT by app id alone;
        # one per app keeps two apps (or two GitHub hosts) with the same id apart.
        self._cache = MemCacheStrategy()
        # One pace for every client of this app: GitHub counts content writes per account.
        self._throttler = WriteThrottler()
        self.app_client = self._client(AppAuthStrategy(app_id, private_key_pem))
        self._tokens: dict[int, InstallationToken] = {}
        self._token_locks: dict[int, asyncio.Lock] = {}
        self._permissions: dict[tuple[int, str, str], tuple[str, float]] = {}
        self._bot_login: str | None = None

    def _client(self, auth: AppAuthStrategy | TokenAuthStrategy) -> GitHub:
        return GitHub(
            auth,
            base_url=self.api_url,
            async_transport=self._transport,
            http_cache=False,
            cache_strategy=self._cache,
            throttler=self._throttler,
            auto_retry=self._retry,
            user_agent="qwen-fix",
        )

    async def installation_token(self, installation_id: int) -> str:
        cached = self._tokens.get(installation_id)
        if cached and cached.fresh(time.time()):
            return cached.token
        lock = self._token_locks.setdefault(installation_id, asyncio.Lock())
        async with lock:
            cached = self._tokens.get(installation_id)
            if cached and cached.fresh(time.time()):
                return cached.token
            response = await self.app_client.rest.apps.async_create_installation_access_token(
                installation_id
            )
            data = response.parsed_data
            register_secret(data.token)
            expires = _parse_time(data.expires_at)
            self._tokens[installation_id] = InstallationToken(data.token, expires)
            return data.token

    async def close(self) -> None:
        """Close the connection pool this app made for itself (a given transport stays open)."""
        if self._own_transport is not None:
            await self._own_transport.close()

    async def bot_login(self) -> str:
        """The account the app acts as on GitHub, `<slug>[bot]`; asked once (GET /app)."""
        if self._bot_login is None:
            app = (await self.app_client.rest.apps.async_get_authenticated()).parsed_data
            if app is None or not app.slug:
                raise RuntimeError("GitHub did not say the app's slug (GET /app)")
            self._bot_login = f"{app.slug}[bot]"
        return self._bot_login

    async def installation(self, installation_id: int) -> GitHub:
        """An API client acting as the installation, with a token valid for a while yet."""
        return self._client(TokenAuthStrategy(await self.installation_token(installation_id)))

    async def permission(self, installation_id: int, repository: str, login: str) -> str:
        """The user's permission on the repository ("admin", "write", "read", "none", …); cached."""
        key = (installation_id, repository.casefold(), login.casefold())
        cached = self._permissions.get(key)
        now = time.monotonic()
        if cached and now - cached[1] < PERMISSION_TTL:
            return cached[0]
        owner, name = repository.split("/", 1)
        client = await self.installation(installation_id)
        try:
            response = await client.rest.repos.async_get_collaborator_permission_level(
                owner, name, login
            )
            permission = response.parsed_data.permission
        except RequestFailed as exc:
            if exc.response.status_code != 404:
                raise
            permission = "none"  # not a collaborator, or no such user
        self._permissions[key] = (permission, now)
        return permission


def _parse_time(value: datetime | str) -> float:
    if isinstance(value, datetime):
        return value.timestamp()
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
