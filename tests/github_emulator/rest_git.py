"""REST routes of the git database (blobs, trees, commits, refs) and file contents, on the bare
repo itself so a later `git fetch` sees what they made."""

from __future__ import annotations

import asyncio
import base64
import binascii
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from tests.github_emulator import bare_repos, branch_protection, pull_refs, workflow_files
from tests.github_emulator.auth import require_permission
from tests.github_emulator.errors import GitHubError, not_found, validation_failed
from tests.github_emulator.rest_issues import bot_user
from tests.github_emulator.routing import (
    RestRoute,
    json_object,
    payloads_of,
    repo_context,
    respond,
    world_of,
)
from tests.github_emulator.state import Repo, Token, now

MODES = {"100644": "blob", "100755": "blob", "120000": "blob", "040000": "tree", "160000": "commit"}
WEB_FLOW = {"name": "GitHub", "email": "noreply@github.com"}
"""The committer GitHub records, and signs as, when an API commit names no committer."""


def unprocessable(message: str) -> GitHubError:
    return GitHubError(422, message)


async def in_repo(function: Any, *args: Any) -> Any:
    """Run a blocking bare-repo call off the server's event loop."""
    return await asyncio.to_thread(function, *args)


async def writable_repo(request: Request) -> tuple[Token, Repo, dict[str, Any]]:
    token, repo = repo_context(request)
    require_permission(token, "contents")
    return token, repo, await json_object(request)


async def create_blob(request: Request) -> Response:
    _, repo, body = await writable_repo(request)
    content, encoding = body.get("content"), body.get("encoding", "utf-8")
    if not isinstance(content, str):
        raise validation_failed("Blob", "content", "missing_field")
    if encoding not in ("utf-8", "base64"):
        raise unprocessable(f"encoding must be 'utf-8' or 'base64', not {encoding!r}")
    try:
        data = base64.b64decode(content, validate=False) if encoding == "base64" else None
    except binascii.Error:
        raise validation_failed("Blob", "content") from None
    sha = await in_repo(bare_repos.write_blob, repo.path, data or content.encode())
    headers = {"Location": payloads_of(request).blob(repo, sha)["url"]}
    return respond(payloads_of(request).blob(repo, sha), status=201, headers=headers)


async def create_tree(request: Request) -> Response:
    _, repo, body = await writable_repo(request)
    entries, base_tree = body.get("tree"), body.get("base_tree")
    if not isinstance(entries, list) or not entries:
        raise validation_failed("Tree", "tree", "missing_field")
    if base_tree is not None and await tree_of(repo, base_tree) is None:
        raise unprocessable("base_tree is not a valid tree")
    changes = [await tree_change(repo, entry) for entry in entries]
    sha = await in_repo(bare_repos.write_tree, repo.path, base_tree, changes)
    listed = await in_repo(bare_repos.tree_entries, repo.path, sha)
    headers = {"Location": f"{payloads_of(request).api}/repos/{repo.full_name}/git/trees/{sha}"}
    return respond(payloads_of(request).tree(repo, sha, listed), status=201, headers=headers)


async def tree_of(repo: Repo, sha: object) -> str | None:
    if not isinstance(sha, str):
        return None
    found = await in_repo(bare_repos.object_type_and_sha, repo.path, f"{sha}^{{tree}}")
    return None if found is None else found[1]


async def tree_change(repo: Repo, entry: object) -> tuple[str, str, str | None]:
    """One (path, mode, sha or None to delete) from a tree entry of the request."""
    if not isinstance(entry, dict) or not isinstance(entry.get("path"), str):
        raise validation_failed("Tree", "tree.path", "missing_field")
    path, mode, kind = entry["path"].strip("/"), entry.get("mode"), entry.get("type")
    if mode not in MODES or kind != MODES[mode]:
        raise unprocessable(f"tree.mode {mode!r} and tree.type {kind!r} do not match")
    if isinstance(entry.get("content"), str):
        sha = await in_repo(bare_repos.write_blob, repo.path, entry["content"].encode())
        return path, mode, sha
    sha = entry.get("sha")
    if sha is None:
        return path, mode, None
    found = await in_repo(bare_repos.object_type_and_sha, repo.path, str(sha))
    if kind != "commit" and (found is None or found[0] != kind):
        raise unprocessable(f"tree.sha {sha} is not a valid {kind}")
    return path, mode, str(sha)


async def create_commit(request: Request) -> Response:
    token, repo = repo_context(request)
    require_permission(token, "contents")
    body = await json_object(request)
    message, parents = body.get("message"), body.get("parents", [])
    if not isinstance(message, str):
        raise validation_failed("Commit", "message", "missing_field")
    tree = await tree_of(repo, body.get("tree"))
    if tree is None or tree != body.get("tree"):
        raise unprocessable("Tree SHA does not exist")
    if not isinstance(parents, list):
        raise validation_failed("Commit", "parents")
    for parent in parents:
        found = await in_repo(bare_repos.object_type_and_sha, repo.path, str(parent))
        if found is None or found[0] != "commit":
            raise unprocessable("Parent SHA does not exist or is not a commit object")
    user = bot_user(request, token)
    bot = {"name": user.login, "email": f"{user.id}+{user.login}@users.noreply.github.com"}
    author = identity(body.get("author"), bot, "author")
    committer = identity(body.get("committer"), {**WEB_FLOW, "date": author["date"]}, "committer")
    sha = await in_repo(
        bare_repos.write_commit, repo.path, tree, [str(p) for p in parents], message, author,
        committer,
    )  # fmt: skip
    # GitHub signs what an app commits through the API unless the app names its own committer
    # or brings its own signature.
    if body.get("committer") is None and body.get("signature") is None:
        repo.verified_commits.add(sha)
    commit = await in_repo(bare_repos.commit, repo.path, sha)
    rendered = payloads_of(request).git_commit(repo, commit, sha in repo.verified_commits)
    return respond(rendered, status=201, headers={"Location": rendered["url"]})


def identity(given: object, default: dict[str, str], field: str) -> dict[str, str]:
    if given is None:
        return {"date": now().isoformat(), **default}
    if not isinstance(given, dict) or not all(
        isinstance(given.get(key), str) for key in ("name", "email")
    ):
        raise validation_failed("Commit", field)
    return {"name": given["name"], "email": given["email"], "date": str(given.get("date", ""))}


async def get_commit(request: Request) -> Response:
    _, repo = repo_context(request)
    sha = request.path_params["commit_sha"]
    found = await in_repo(bare_repos.object_type_and_sha, repo.path, sha)
    if found is None or found[0] != "commit" or not found[1].startswith(sha.lower()):
        raise not_found()
    commit = await in_repo(bare_repos.commit, repo.path, found[1])
    return respond(
        payloads_of(request).git_commit(repo, commit, commit.sha in repo.verified_commits)
    )


async def create_ref(request: Request) -> Response:
    token, repo, body = await writable_repo(request)
    ref, sha = body.get("ref"), body.get("sha")
    if not isinstance(ref, str) or not ref.startswith("refs/") or ref.count("/") < 2:
        raise unprocessable(f"{ref} is not a valid ref name.")
    if not isinstance(sha, str) or await in_repo(bare_repos.object_type, repo.path, sha) is None:
        raise unprocessable("Object does not exist")
    if await in_repo(bare_repos.resolve, repo.path, ref) is not None:
        raise unprocessable("Reference already exists")
    await refuse_workflow_changes(token, repo, ref, sha)
    await in_repo(bare_repos.update_ref, repo.path, ref, sha)
    await in_repo(pull_refs.sync, world_of(request), repo)
    rendered = payloads_of(request).git_ref(repo, ref, sha)
    return respond(rendered, status=201, headers={"Location": rendered["url"]})


async def update_ref(request: Request) -> Response:
    token, repo, body = await writable_repo(request)
    ref, sha = "refs/" + request.path_params["ref"], body.get("sha")
    current = await in_repo(bare_repos.resolve, repo.path, ref)
    if current is None:
        raise unprocessable("Reference does not exist")
    if not isinstance(sha, str) or await in_repo(bare_repos.object_type, repo.path, sha) is None:
        raise unprocessable("Object does not exist")
    forced = body.get("force") is True
    if not forced and not await in_repo(bare_repos.is_ancestor, repo.path, current, sha):
        raise unprocessable("Update is not a fast forward")
    broken = await in_repo(branch_protection.violations, repo, ref, current, sha)
    if broken:
        # One sentence per broken rule, as GitHub joins them.
        raise GitHubError(
            422, " ".join(broken), documentation_url=branch_protection.DOCUMENTATION_URL
        )
    await refuse_workflow_changes(token, repo, ref, sha)
    await in_repo(bare_repos.update_ref, repo.path, ref, sha)
    await in_repo(pull_refs.sync, world_of(request), repo)
    return respond(payloads_of(request).git_ref(repo, ref, sha))


async def refuse_workflow_changes(token: Token, repo: Repo, ref: str, sha: str) -> None:
    """403 with the reason `git push` gives, when an app without the `workflows` permission
    would point a ref at changed workflow files (commits made through this API included)."""
    if workflow_files.may_change_workflows(token):
        return
    reason = await in_repo(workflow_files.refusal, repo.path, ref, sha, repo.default_branch)
    if reason is not None:
        raise GitHubError(403, reason)


async def get_content(request: Request) -> Response:
    token, repo = repo_context(request)
    require_permission(token, "contents", "read")
    path = request.path_params["path"].strip("/")
    ref = request.query_params.get("ref") or repo.default_branch
    found = await in_repo(bare_repos.read_blob, repo.path, ref, path)
    if found is None:
        raise not_found()
    sha, data = found
    return respond(payloads_of(request).content_file(repo, path, ref, sha, data))


GIT = "/repos/{owner}/{repo}/git"
WRITE = {201, 400, 401, 403, 404, 422}

routes = [
    RestRoute("POST", f"{GIT}/blobs", create_blob, WRITE),
    RestRoute("POST", f"{GIT}/trees", create_tree, WRITE),
    RestRoute("POST", f"{GIT}/commits", create_commit, WRITE),
    RestRoute("GET", f"{GIT}/commits/{{commit_sha}}", get_commit, {200, 401, 404}),
    RestRoute("POST", f"{GIT}/refs", create_ref, WRITE),
    RestRoute("PATCH", f"{GIT}/refs/{{ref}}", update_ref, {200, 400, 401, 403, 404, 422}),
    RestRoute("GET", "/repos/{owner}/{repo}/contents/{path}", get_content, {200, 401, 403, 404}),
]
