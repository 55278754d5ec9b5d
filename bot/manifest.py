"""`qwen-fix app create`: register the GitHub App from `app.yml` and write its credentials to .env.

GitHub's manifest flow: a local page posts the manifest to GitHub's "new app" page, the user
confirms, GitHub sends the browser back to our callback with a one-time code, and the code is
exchanged for the app's id, private key and webhook secret.
"""

from __future__ import annotations

import asyncio
import hmac
import os
import re
import secrets
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import httpx
import structlog
import uvicorn
import yaml
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import Route

from bot.manifest_page import failed_page, installed_page, register_page
from bot.receiver import WEBHOOK_PATH

log = structlog.get_logger("qwen_fix.manifest")

# Shipped inside the package, so an installed qwen-fix has it; `app.yml` at the root of the
# repository is a link to it (where Probot-style apps keep their manifest).
APP_MANIFEST_PATH = Path(__file__).resolve().parent / "app.yml"
"""The manifest shipped at the root of the repository."""

CALLBACK_PATH = "/callback"
"""Where GitHub sends the browser back with `?code=…&state=…`."""

DOTCOM_WEB_URL = "https://github.com"


class ManifestFlowError(Exception):
    """The app could not be registered; the message says why in a user's words."""


@dataclass(frozen=True, slots=True)
class GitHubHost:
    """Where a GitHub lives: its web pages and its REST API."""

    web_url: str
    api_url: str

    @classmethod
    def from_web_url(cls, web_url: str) -> GitHubHost:
        """github.com, a GHE.com tenant (api.TENANT.ghe.com) or an Enterprise Server (/api/v3)."""
        web = web_url.rstrip("/")
        parts = urlsplit(web)
        if parts.hostname == "github.com":
            return cls(web, "https://api.github.com")
        if parts.hostname and parts.hostname.endswith(".ghe.com"):
            return cls(web, f"{parts.scheme}://api.{parts.netloc}")
        return cls(web, f"{web}/api/v3")

    def new_app_url(self, org: str | None, state: str) -> str:
        """GitHub's "register a new app" page for the user, or for the organization `org`."""
        owner = f"/organizations/{quote(org, safe='')}" if org else ""
        return f"{self.web_url}{owner}/settings/apps/new?state={quote(state, safe='')}"


def load_manifest_template(path: Path = APP_MANIFEST_PATH) -> dict[str, Any]:
    template = yaml.safe_load(path.read_text())
    if not isinstance(template, dict):
        raise ManifestFlowError(f"{path} is not a YAML mapping")
    return template


def webhook_target(webhook_url: str) -> str:
    """The full webhook URL: a bare origin gets the receiver's path."""
    parts = urlsplit(webhook_url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ManifestFlowError(f"the webhook URL must be an http(s) URL, got {webhook_url!r}")
    if parts.path in ("", "/"):
        return f"{parts.scheme}://{parts.netloc}{WEBHOOK_PATH}"
    return webhook_url


def build_manifest(
    template: Mapping[str, Any],
    *,
    webhook_url: str,
    redirect_url: str,
    name: str | None = None,
) -> dict[str, Any]:
    """The manifest to post: `template` with this deployment's URLs (and name) filled in."""
    hook_url = webhook_target(webhook_url)
    parts = urlsplit(hook_url)
    manifest = dict(template)
    manifest["url"] = f"{parts.scheme}://{parts.netloc}"
    manifest["hook_attributes"] = {**dict(template.get("hook_attributes") or {}), "url": hook_url}
    manifest["redirect_url"] = redirect_url
    # Where GitHub sends people back after they sign in to the run viewer with the app.
    manifest["callback_urls"] = [f"{parts.scheme}://{parts.netloc}/login/callback"]
    if name:
        manifest["name"] = name
    return manifest


@dataclass(frozen=True, slots=True)
class CreatedApp:
    """What GitHub answers when the code is exchanged: the new app and its secrets."""

    id: int
    slug: str
    name: str
    html_url: str
    pem: str = field(repr=False)
    webhook_secret: str = field(repr=False)
    client_id: str = ""
    client_secret: str = field(default="", repr=False)
    """The app's OAuth credentials, for signing in to the run viewer."""

    @property
    def install_url(self) -> str:
        return f"{self.html_url.rstrip('/')}/installations/new"

    def env_values(self, api_url: str) -> dict[str, str]:
        """The .env lines `Settings` reads."""
        values = {
            "APP_ID": str(self.id),
            "PRIVATE_KEY": self.pem,
            "WEBHOOK_SECRET": self.webhook_secret,
            "GITHUB_API_URL": api_url,
        }
        if self.client_id and self.client_secret:
            values["GITHUB_CLIENT_ID"] = self.client_id
            values["GITHUB_CLIENT_SECRET"] = self.client_secret
        return values


async def exchange_code(client: httpx.AsyncClient, api_url: str, code: str) -> CreatedApp:
    """POST /app-manifests/{code}/conversions: the code is single-use and lives an hour."""
    response = await client.post(
        f"{api_url.rstrip('/')}/app-manifests/{quote(code, safe='')}/conversions",
        headers={"Accept": "application/vnd.github+json", "X-GitHub-Api-Version": "2022-11-28"},
    )
    if response.status_code != 201:
        raise ManifestFlowError(
            f"GitHub refused the code (HTTP {response.status_code}: {_message(response)}); "
            "codes work once and expire after an hour, so register the app again"
        )
    data = response.json()
    if not data.get("webhook_secret"):
        raise ManifestFlowError("GitHub created the app without a webhook secret")
    return CreatedApp(
        id=int(data["id"]),
        slug=str(data["slug"]),
        name=str(data["name"]),
        html_url=str(data["html_url"]),
        pem=str(data["pem"]),
        webhook_secret=str(data["webhook_secret"]),
        client_id=str(data.get("client_id") or ""),
        client_secret=str(data.get("client_secret") or ""),
    )


def _message(response: httpx.Response) -> str:
    try:
        return str(response.json().get("message", response.reason_phrase))
    except ValueError:
        return response.reason_phrase


# --- .env ---------------------------------------------------------------------------------------

_ASSIGNMENT = re.compile(r"\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*)")
_BARE_VALUE = re.compile(r"[A-Za-z0-9_./:@+,-]*")


def env_line(key: str, value: str) -> str:
    """`KEY=value`, double-quoted with escapes when needed: a PEM becomes one line with \\n."""
    if _BARE_VALUE.fullmatch(value):
        return f"{key}={value}"
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'{key}="{escaped}"'


def env_file_with(existing: str, values: Mapping[str, str]) -> str:
    """`existing` .env text with `values` set: their old lines replaced, every other line kept.

    Keys match case-insensitively, as the settings read them; a quoted value spanning several
    lines (a PEM pasted as is) is replaced whole.
    """
    wanted = {key.upper(): key for key in values}
    written: set[str] = set()
    lines = existing.splitlines()
    out: list[str] = []
    index = 0
    while index < len(lines):
        line = lines[index]
        index += 1
        match = _ASSIGNMENT.fullmatch(line)
        if match is None or match.group(1).upper() not in wanted:
            out.append(line)
            continue
        index = _end_of_value(lines, index, match.group(2))
        key = wanted[match.group(1).upper()]
        if key not in written:
            out.append(env_line(key, values[key]))
            written.add(key)
    out.extend(env_line(key, value) for key, value in values.items() if key not in written)
    return "\n".join(out) + "\n"


def _end_of_value(lines: list[str], index: int, value: str) -> int:
    """Index of the line after a value that opens a quote it does not close on its line."""
    quote_char = value[:1]
    if quote_char not in ("'", '"') or _closes(value[1:], quote_char):
        return index
    while index < len(lines):
        index += 1
        if _closes(lines[index - 1], quote_char):
            break
    return index


def _closes(text: str, quote_char: str) -> bool:
    unescaped = text.replace("\\\\", "").replace("\\" + quote_char, "")
    return quote_char in unescaped


def write_env_file(path: Path, values: Mapping[str, str]) -> None:
    """Set `values` in the .env at `path`, keeping its other lines; the file ends up mode 0600."""
    existing = path.read_text() if path.exists() else ""
    text = env_file_with(existing, values)
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    # Created 0600 from the start, so the key is never readable by others, not even briefly.
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(descriptor, "w") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    os.chmod(path, 0o600)


# --- the local web flow -------------------------------------------------------------------------


@dataclass
class ManifestFlow:
    """The two pages of the flow and the outcome the command waits for."""

    host: GitHubHost
    manifest: dict[str, Any]
    org: str | None
    env_path: Path
    client: httpx.AsyncClient
    state: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    done: asyncio.Future[CreatedApp] = field(default_factory=asyncio.Future)

    def asgi_app(self) -> Starlette:
        return Starlette(routes=[Route("/", self.start_page), Route(CALLBACK_PATH, self.callback)])

    async def start_page(self, request: Request) -> HTMLResponse:
        account = f"the organization {self.org}" if self.org else "your personal account"
        action = self.host.new_app_url(self.org, self.state)
        return HTMLResponse(register_page(action, self.manifest, account))

    async def callback(self, request: Request) -> HTMLResponse:
        code = request.query_params.get("code", "")
        state = request.query_params.get("state", "")
        if not hmac.compare_digest(state.encode(), self.state.encode()):
            log.warning("manifest.bad_state")
            return HTMLResponse(failed_page("The state does not match this session."), 400)
        if not code:
            return HTMLResponse(failed_page("GitHub sent no code back."), 400)
        if self.done.done():
            return HTMLResponse(failed_page("This session already registered an app."), 409)
        try:
            app = await exchange_code(self.client, self.host.api_url, code)
        except (ManifestFlowError, httpx.HTTPError) as exc:
            log.warning("manifest.failed", error=str(exc))
            return HTMLResponse(failed_page(str(exc)), 502)
        try:
            values = app.env_values(self.host.api_url)
            await asyncio.to_thread(write_env_file, self.env_path, values)
        except OSError as exc:
            # The code is spent and GitHub shows the key only once: this app is of no use now.
            reason = (
                f"GitHub registered {app.name} (id {app.id}) but {self.env_path} could not be "
                f"written ({exc.strerror or exc}); delete the app at {app.html_url} and start again"
            )
            self.done.set_exception(ManifestFlowError(reason))
            return HTMLResponse(failed_page(reason, waiting=False), 500)
        log.info("manifest.registered", app_id=app.id, slug=app.slug, env=str(self.env_path))
        self.done.set_result(app)
        return HTMLResponse(installed_page(app.name, app.install_url, str(self.env_path)))


def _bind(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


async def run_manifest_flow(
    *,
    webhook_url: str,
    github_url: str = DOTCOM_WEB_URL,
    api_url: str | None = None,
    org: str | None = None,
    name: str | None = None,
    env_path: Path = Path(".env"),
    manifest_path: Path = APP_MANIFEST_PATH,
    listen_host: str = "127.0.0.1",
    port: int = 3000,
    on_ready: Callable[[str], None] | None = None,
) -> CreatedApp:
    """Serve the flow on `listen_host:port` until an app is registered and .env is written.

    `on_ready` receives the local URL to open in a browser once the server listens; port 0
    picks a free one. Raises ManifestFlowError if the server stops first (e.g. on Ctrl-C).
    """
    host = GitHubHost.from_web_url(github_url)
    if api_url:
        host = GitHubHost(host.web_url, api_url.rstrip("/"))
    template = load_manifest_template(manifest_path)
    webhook_target(webhook_url)  # refuse a bad URL before taking the port
    try:
        sock = _bind(listen_host, port)
    except OSError as exc:
        raise ManifestFlowError(
            f"cannot listen on {listen_host}:{port} ({exc.strerror or exc}): pass --port with a "
            "free port"
        ) from None
    with sock:
        shown = socket.gethostname() if listen_host in ("0.0.0.0", "::") else listen_host
        local_url = f"http://{shown}:{sock.getsockname()[1]}"
        manifest = build_manifest(
            template, webhook_url=webhook_url, redirect_url=local_url + CALLBACK_PATH, name=name
        )
        async with httpx.AsyncClient(timeout=30.0) as client:
            flow = ManifestFlow(host, manifest, org, env_path, client)
            config = uvicorn.Config(flow.asgi_app(), log_level="warning", lifespan="off")
            server = uvicorn.Server(config)
            serving = asyncio.create_task(server.serve(sockets=[sock]))
            try:
                await _started(server, serving)
                log.info("manifest.waiting", url=local_url, github=host.web_url)
                if on_ready is not None:
                    on_ready(local_url)
                either: set[asyncio.Future[Any]] = {flow.done, serving}
                await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
                if not flow.done.done():
                    raise ManifestFlowError("stopped before an app was registered")
                return flow.done.result()
            finally:
                server.should_exit = True
                await serving


async def _started(server: uvicorn.Server, serving: asyncio.Task[None]) -> None:
    while not server.started:
        if serving.done():
            serving.result()  # raises what stopped it, if anything did
            raise ManifestFlowError("the local web server stopped before it started")
        await asyncio.sleep(0.01)
