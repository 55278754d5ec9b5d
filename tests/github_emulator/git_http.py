"""git smart HTTP (clone, fetch, push) via `git http-backend`, behind installation tokens."""

from __future__ import annotations

import asyncio
import gzip
import subprocess
import zlib

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from tests.github_emulator.auth import can_access, token_from_basic
from tests.github_emulator.state import Repo, World

CHALLENGE = {"WWW-Authenticate": 'Basic realm="GitHub"'}


async def serve_git(request: Request) -> Response:
    world: World = request.app.state.world
    params = request.path_params
    repo = world.repo(f"{params['owner']}/{params['repo']}")
    token = token_from_basic(world, request.headers.get("authorization"))
    if token is None:
        return PlainTextResponse("Authentication required\n", 401, headers=CHALLENGE)
    if repo is None or not can_access(token, repo):
        return PlainTextResponse("Repository not found.\n", 404)
    body = decoded_body(await request.body(), request.headers.get("content-encoding", ""))
    output = await run_backend(world, repo, request, body)
    return cgi_response(output)


def decoded_body(raw: bytes, encoding: str) -> bytes:
    # git gzips large upload-pack requests; http-backend would inflate them too, but a plain
    # body keeps CONTENT_LENGTH honest.
    if encoding.lower() in ("gzip", "x-gzip"):
        return gzip.decompress(raw)
    if encoding.lower() == "deflate":
        return zlib.decompress(raw)
    return raw


async def run_backend(world: World, repo: Repo, request: Request, body: bytes) -> bytes:
    env = {
        "PATH": "/usr/bin:/bin",
        "GIT_CONFIG_NOSYSTEM": "1",
        "HOME": str(world.root),
        "GIT_PROJECT_ROOT": str(world.root / "git"),
        "GIT_HTTP_EXPORT_ALL": "1",
        "PATH_INFO": f"/{repo.owner.login}/{repo.name}.git/{request.path_params['path']}",
        "REQUEST_METHOD": request.method,
        "QUERY_STRING": request.url.query,
        "CONTENT_TYPE": request.headers.get("content-type", ""),
        "CONTENT_LENGTH": str(len(body)),
        "REMOTE_USER": "x-access-token",
        "REMOTE_ADDR": "127.0.0.1",
    }
    if "git-protocol" in request.headers:
        env["HTTP_GIT_PROTOCOL"] = request.headers["git-protocol"]
    # A thread and subprocess.run rather than asyncio's subprocess: under uvloop, feeding stdin
    # to an http-backend that already exited raises RuntimeError instead of BrokenPipeError.
    done = await asyncio.to_thread(
        subprocess.run, ["git", "http-backend"], input=body, env=env, capture_output=True
    )
    return done.stdout


def cgi_response(output: bytes) -> Response:
    """Turn CGI output (headers, blank line, body) into a response."""
    ends = [(output.find(sep), sep) for sep in (b"\r\n\r\n", b"\n\n") if sep in output]
    end, separator = min(ends) if ends else (len(output), b"")
    head, body = output[:end], output[end + len(separator) :]
    status = 200
    headers: dict[str, str] = {}
    for line in head.decode("latin-1").splitlines():
        name, _, value = line.partition(":")
        if name.lower() == "status":
            status = int(value.strip().split(" ")[0])
        elif name:
            headers[name.strip()] = value.strip()
    return Response(body, status_code=status, headers=headers)


routes = [Route("/{owner}/{repo}.git/{path:path}", serve_git, methods=["GET", "POST"])]
