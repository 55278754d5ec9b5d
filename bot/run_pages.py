"""The run viewer's routes: `/runs`, `/runs/{id}`, its live event stream, and signing in.

Nothing under /runs is public: an anonymous browser is sent to sign in, a machine without the
operator's token gets 401, and a run of a repository the viewer cannot read is a 404 like a
run that does not exist. Paths carry run ids (32 hex characters), never file names.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, quote

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from starlette.responses import StreamingResponse

from bot import run_render as render
from bot.delivery_shape import REPOSITORY
from bot.run_assets import SCRIPT, STYLE
from bot.runs import RUN_ID, RunHeader, RunStore
from bot.web_auth import (
    SESSION_COOKIE,
    SESSION_TTL,
    STATE_COOKIE,
    STATE_TTL,
    ForgedCookie,
    SignInFailed,
    Viewer,
    WebAuth,
    safe_next,
)

PAGE_SIZE = 25
MAX_QUERY = 1024
"""Longest query string the viewer reads; longer is a 414."""
STREAM_ID = re.compile(r"\d{1,20}-\d{1,20}")
STATES = frozenset({"queued", "running", "done", "failed", "stopped"})
KEEPALIVE = 15.0
"""Seconds between comments on an idle event stream, so proxies keep it open."""
LOOK = 2.0
"""Seconds the stream waits for an event before it looks at the run's header again."""
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
        "img-src 'self'; form-action 'self' https:; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


@dataclass
class RunViewer:
    store: RunStore
    auth: WebAuth


class Refused(Exception):
    def __init__(self, response: Response) -> None:
        self.response = response


def install(app: FastAPI) -> None:
    """Add the viewer's routes; `app.state.run_viewer` must be set before requests come."""
    router = APIRouter(include_in_schema=False)

    @router.get("/runs")
    async def runs(request: Request) -> Response:
        viewer, who = await _viewer(request)
        query = request.query_params
        repository = query.get("repo") or None
        state = query.get("state") or None
        if repository is not None and not REPOSITORY.fullmatch(repository):
            return _problem(400, "repo must be owner/name")
        if state is not None and state not in STATES:
            return _problem(400, f"state must be one of {', '.join(sorted(STATES))}")
        try:
            before = float(query["before"]) if "before" in query else None
        except ValueError:
            return _problem(400, "before must be a time")

        async def readable(run: RunHeader) -> bool:
            return await who.auth.may_read(viewer, run.repository)

        found = await who.store.recent(
            repository=repository, state=state, before=before, limit=PAGE_SIZE + 1,
            allowed=readable,
        )  # fmt: skip
        more = found[PAGE_SIZE - 1].started if len(found) > PAGE_SIZE else None
        body = render.run_list(found[:PAGE_SIZE], repository=repository, state=state, more=more)
        return _html(render.page("Runs", body))

    @router.get("/runs/static/viewer.css")
    async def style() -> Response:
        return Response(STYLE, media_type="text/css", headers={"Cache-Control": "max-age=300"})

    @router.get("/runs/static/viewer.js")
    async def script() -> Response:
        headers = {"Cache-Control": "max-age=300"}
        return Response(SCRIPT, media_type="text/javascript", headers=headers)

    @router.get("/runs/{run_id}")
    async def run_page(request: Request, run_id: str) -> Response:
        viewer, who = await _viewer(request)
        run = await _readable_run(who, viewer, run_id)
        events = await who.store.events(run.id)
        last = events[-1][0] if events else "0-0"
        body = render.run_page(run, events, last)
        return _html(render.page(render.target(run), body, script=True))

    @router.get("/runs/{run_id}/events")
    async def run_events(request: Request, run_id: str) -> Response:
        viewer, who = await _viewer(request, browser=False)
        run = await _readable_run(who, viewer, run_id)
        after = request.headers.get("last-event-id") or request.query_params.get("after", "0-0")
        if not STREAM_ID.fullmatch(after):
            return _problem(400, "after must be a stream id like 1700000000000-0")
        stream = _follow(request, who.store, run, after)
        headers = {**SECURITY_HEADERS, "X-Accel-Buffering": "no"}
        return StreamingResponse(stream, media_type="text/event-stream", headers=headers)

    @router.get("/login")
    async def login(request: Request) -> Response:
        who = _who(request)
        next_path = safe_next(request.query_params.get("next", "/runs"))
        form = _token_form(next_path, oauth=who.auth.oauth is not None)
        return _html(render.page("Sign in", form, signed_in=False))

    @router.get("/login/github")
    async def login_with_github(request: Request) -> Response:
        who = _who(request)
        next_path = safe_next(request.query_params.get("next", "/runs"))
        if who.auth.oauth is None:
            return _problem(404, "signing in with GitHub is not set up")
        url, cookie = who.auth.authorize_url(request, next_path)
        response = RedirectResponse(url, status_code=303)
        response.set_cookie(STATE_COOKIE, cookie, **who.auth.cookie_options(STATE_TTL))  # type: ignore[arg-type]
        return response

    @router.get("/login/callback")
    async def callback(request: Request) -> Response:
        who = _who(request)
        code, state = request.query_params.get("code"), request.query_params.get("state")
        if who.auth.oauth is None or not code or not state:
            return _problem(400, "this is where GitHub sends people back after signing in")
        try:
            session, next_path = await who.auth.finish_sign_in(
                request, code, state, request.cookies.get(STATE_COOKIE)
            )
        except SignInFailed as exc:
            page = render.page("Sign in", f"<p>{render.e(exc)}</p>", signed_in=False)
            return _html(page, 400)
        response = RedirectResponse(next_path, status_code=303)
        response.set_cookie(SESSION_COOKIE, session, **who.auth.cookie_options(SESSION_TTL))  # type: ignore[arg-type]
        response.delete_cookie(STATE_COOKIE, path="/")
        return response

    @router.post("/login/token")
    async def token_login(request: Request) -> Response:
        """Break-glass: the operator's token typed into the sign-in page."""
        who = _who(request)
        if not _same_origin(request):
            return _problem(403, "the form must be sent from this site")
        body = await request.body()
        if len(body) > MAX_QUERY * 4:
            return _problem(413, "the form is too large")
        fields = parse_qs(body.decode(errors="replace"))
        token = fields.get("token", [""])[0]
        next_path = safe_next(fields.get("next", ["/runs"])[0])
        if not who.auth.is_admin_token(token):
            again = _token_form(next_path, oauth=who.auth.oauth is not None, wrong=True)
            return _html(render.page("Sign in", again, signed_in=False), 401)
        response = RedirectResponse(next_path, status_code=303)
        session = await who.auth.new_session("admin", None)
        response.set_cookie(SESSION_COOKIE, session, **who.auth.cookie_options(SESSION_TTL))  # type: ignore[arg-type]
        return response

    @router.post("/logout")
    async def logout(request: Request) -> Response:
        who = _who(request)
        if not _same_origin(request):
            return _problem(403, "the form must be sent from this site")
        await who.auth.end_session(request.cookies.get(SESSION_COOKIE))
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response

    app.include_router(router)

    @app.exception_handler(Refused)
    async def refused(request: Request, exc: Refused) -> Response:
        return exc.response


def _who(request: Request) -> RunViewer:
    who: RunViewer | None = getattr(request.app.state, "run_viewer", None)
    if who is None:
        raise Refused(_problem(503, "the run viewer is not set up in this process"))
    return who


async def _viewer(request: Request, *, browser: bool = True) -> tuple[Viewer, RunViewer]:
    """The signed-in viewer, or a Refused: 414 for a huge query, 401 for a forged cookie or a
    machine, a redirect to sign in for a browser."""
    who = _who(request)
    if len(request.url.query) > MAX_QUERY:
        raise Refused(_problem(414, "the query string is too long"))
    try:
        viewer = await who.auth.viewer(request)
    except ForgedCookie:
        response = _problem(401, "your session is not valid: sign in again at /login")
        response.delete_cookie(SESSION_COOKIE, path="/")
        raise Refused(response) from None
    if viewer is not None:
        return viewer, who
    wants_html = "text/html" in request.headers.get("accept", "")
    if browser and wants_html and "authorization" not in request.headers:
        path = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise Refused(RedirectResponse(f"/login?next={quote(path, safe='')}", status_code=303))
    raise Refused(_problem(401, "sign in, or send the operator's token as a bearer token"))


async def _readable_run(who: RunViewer, viewer: Viewer, run_id: str) -> RunHeader:
    run = await who.store.header(run_id) if RUN_ID.fullmatch(run_id) else None
    if run is None or not await who.auth.may_read(viewer, run.repository):
        raise Refused(_problem(404, "no such run"))
    return run


async def _follow(
    request: Request, store: RunStore, run: RunHeader, after: str
) -> AsyncIterator[bytes]:
    """Server-sent events: each new event as an HTML fragment, the header when it changes,
    and `end` once the run has ended and everything was sent."""
    last_header = run.model_dump_json()
    quiet_since = time.monotonic()
    while not await request.is_disconnected():
        events = await store.events(run.id, after, count=200, block=int(LOOK * 1000))
        for event_id, event in events:
            after = event_id
            fragment = render.event_html(event_id, event)
            if fragment:
                name = "plan" if event.get("type") == "plan" else "event"
                yield _sse(name, {"html": fragment}, event_id)
        current = await store.header(run.id) or run
        if current.model_dump_json() != last_header:
            last_header = current.model_dump_json()
            yield _sse("header", {"html": render.run_header(current), "steps": current.steps})
        if current.ended is not None and not events:
            yield _sse("end", {"state": current.state})
            return
        if events:
            quiet_since = time.monotonic()
        elif time.monotonic() - quiet_since > KEEPALIVE:
            quiet_since = time.monotonic()
            yield b": keepalive\n\n"
        await asyncio.sleep(0)


def _sse(name: str, data: dict[str, Any], event_id: str | None = None) -> bytes:
    lines = [f"event: {name}"]
    if event_id is not None:
        lines.append(f"id: {event_id}")
    lines.append(f"data: {json.dumps(data)}")
    return ("\n".join(lines) + "\n\n").encode()


def _same_origin(request: Request) -> bool:
    """A form post from this site: its Origin (or Referer) is ours. Blocks cross-site posts."""
    origin = request.headers.get("origin") or request.headers.get("referer") or ""
    ours = str(request.base_url).rstrip("/")
    who = _who(request)
    allowed = {ours, (who.auth.public_url or ours).rstrip("/")}
    return any(origin == root or origin.startswith(root + "/") for root in allowed)


def _token_form(next_path: str, *, oauth: bool = True, wrong: bool = False) -> str:
    note = "<p class=error>That is not the operator's token.</p>" if wrong else ""
    github = (
        f'<p><a class=button href="/login/github?next={render.e(quote(next_path, safe=""))}">'
        "Sign in with GitHub</a></p>"
        if oauth
        else "<p>Signing in with GitHub is not set up (GITHUB_CLIENT_ID and "
        "GITHUB_CLIENT_SECRET).</p>"
    )
    return (
        f"<h1>Sign in</h1>{github}{note}<form method=post action=/login/token>"
        f'<input type=hidden name=next value="{render.e(next_path)}">'
        "<label>Operator token <input type=password name=token autocomplete=off></label>"
        "<button>Sign in</button></form>"
    )


def _html(text: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(text, status_code=status, headers=SECURITY_HEADERS)


def _problem(status: int, detail: str) -> Response:
    return PlainTextResponse(detail + "\n", status_code=status, headers=SECURITY_HEADERS)
