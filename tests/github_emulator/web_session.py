"""The browser's signed-in GitHub user: the `/login` page web pages send a signed-out browser
to, and `POST /session`, which signs it in as whoever it names (no passwords here)."""

from __future__ import annotations

import html
from urllib.parse import parse_qs, urlencode

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from tests.github_emulator.routing import payloads_of, world_of


def sign_in_redirect(request: Request, **extra: str) -> Response:
    """302 to `/login?…&return_to=` this page, as GitHub answers a signed-out browser."""
    return_to = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    query = urlencode({**extra, "return_to": return_to})
    return RedirectResponse(f"{payloads_of(request).web}/login?{query}", status_code=302)


def page(title: str, body: str, status: int = 200) -> HTMLResponse:
    """A bare GitHub-ish page; `body` is HTML the caller escaped."""
    return HTMLResponse(
        f"<!doctype html><title>{html.escape(title)}</title><h1>{html.escape(title)}</h1>{body}",
        status_code=status,
    )


async def login_page(request: Request) -> Response:
    return_to = html.escape(request.query_params.get("return_to", "/"))
    login = html.escape(request.query_params.get("login", ""))
    return page(
        "Sign in to GitHub",
        '<form method="post" action="/session">'
        f'<label>Username or email address <input name="login" value="{login}"></label>'
        '<label>Password <input name="password" type="password"></label>'
        f'<input type="hidden" name="return_to" value="{return_to}">'
        "<button>Sign in</button></form>",
    )


async def create_session(request: Request) -> Response:
    form = {key: values[0] for key, values in parse_qs((await request.body()).decode()).items()}
    login = form.get("login", "").strip()
    if not login:
        return page("Sign in to GitHub", "<p>Incorrect username or password.</p>", 422)
    world = world_of(request)
    world.user(login)
    with world.lock:
        world.web_login = login
    target = payloads_of(request).web + local_path(form.get("return_to", "/"))
    return RedirectResponse(target, status_code=302)


def local_path(return_to: str) -> str:
    """Only a path on this site: GitHub never sends a browser elsewhere after signing in."""
    if not return_to.startswith("/") or return_to.startswith("//") or "\\" in return_to:
        return "/"
    return return_to


routes = [
    Route("/login", login_page, methods=["GET"]),
    Route("/session", create_session, methods=["POST"]),
]
