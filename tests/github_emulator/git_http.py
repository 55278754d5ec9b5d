"""git smart HTTP (clone, fetch, push) via `git http-backend`, behind installation tokens and
what GitHub asks of them: access to the repository (anyone may fetch a public one), `contents`
read to fetch, write to push; pushes then go through `push_guard` (protected branches, the
`workflows` permission), and refs/pull/N/head follow the branches they pushed."""

from __future__ import annotations

import asyncio
import gzip
import subprocess
import zlib

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from tests.github_emulator import pull_refs, push_guard, receive_pack
from tests.github_emulator.auth import can_access, has_permission, token_from_basic
from tests.github_emulator.state import Repo, Token, World

CHALLENGE = {"WWW-Authenticate": 'Basic realm="GitHub"'}
PUSH_RESULT = {
    "Content-Type": "application/x-git-receive-pack-result",
    "Cache-Control": "no-cache, max-age=0, must-revalidate",
}


async def serve_git(request: Request) -> Response:
    world: World = request.app.state.world
    params = request.path_params
    repo = world.repo(f"{params['owner']}/{params['repo']}")
    token = token_from_basic(world, request.headers.get("authorization"))
    if token is None:
        return PlainTextResponse("Authentication required\n", 401, headers=CHALLENGE)
    if repo is None or not (can_access(token, repo) or not repo.private):
        return PlainTextResponse("Repository not found.\n", 404)
    pushing = "git-receive-pack" in (params["path"], request.query_params.get("service"))
    if not allowed(token, repo, pushing):
        # git prints a text/plain error body as `remote: ...` lines.
        bot = f"{token.installation.app.slug}[bot]"
        return PlainTextResponse(f"Permission to {repo.full_name}.git denied to {bot}.\n", 403)
    body = decoded_body(await request.body(), request.headers.get("content-encoding", ""))
    if params["path"] != "git-receive-pack":
        return cgi_response(await run_backend(world, repo, request, body))
    response = await guarded_push(world, repo, token, request, body)
    await asyncio.to_thread(pull_refs.sync, world, repo)
    return response


def allowed(token: Token, repo: Repo, pushing: bool) -> bool:
    """Pushing needs the installation on the repository and `contents: write`; fetching needs
    `contents: read` there, or a public repository."""
    if pushing:
        return can_access(token, repo) and has_permission(token, "contents", "write")
    return not repo.private or has_permission(token, "contents", "read")


async def guarded_push(
    world: World, repo: Repo, token: Token, request: Request, body: bytes
) -> Response:
    """A push whose refused ref updates are answered one by one, with the reason and messages
    GitHub gives; the others go to git (none of them, in an atomic push)."""
    push = receive_pack.parse_request(body)
    refused = await asyncio.to_thread(push_guard.refusals, world.root, repo, token, push)
    if not refused:
        return cgi_response(await run_backend(world, repo, request, body))
    rejections = [receive_pack.refused_line(ref, r.reason) for ref, r in refused.items()]
    messages = [line for r in refused.values() for line in r.messages]
    kept = [c for c in push.commands if c.ref not in refused]
    if not kept or "atomic" in push.capabilities:
        failed = [receive_pack.refused_line(c.ref, "atomic push failure") for c in kept]
        lines = [b"unpack ok\n", *rejections, *failed]
        return Response(
            receive_pack.report(lines, push.capabilities, messages), headers=PUSH_RESULT
        )
    status, headers, output = cgi_parts(
        await run_backend(world, repo, request, push.without(set(refused)))
    )
    lines = [*receive_pack.report_lines(output), *rejections]
    return Response(receive_pack.report(lines, push.capabilities, messages), status, headers)


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
    status, headers, body = cgi_parts(output)
    return Response(body, status_code=status, headers=headers)


def cgi_parts(output: bytes) -> tuple[int, dict[str, str], bytes]:
    """Status, headers and body of CGI output (headers, blank line, body)."""
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
    return status, headers, body


routes = [Route("/{owner}/{repo}.git/{path:path}", serve_git, methods=["GET", "POST"])]
