"""Every REST route and status of the emulator, validated against GitHub's OpenAPI description."""

from __future__ import annotations

import copy
import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import jwt
import pytest
from openapi_core import Config, OpenAPI
from openapi_core.testing import MockRequest, MockResponse
from openapi_schema_validator import OAS30Validator
from starlette.routing import Route

from tests.fixtures import openapi_description
from tests.github_emulator import GitHubEmulator, bare_repos
from tests.github_emulator.routing import API_PREFIX
from tests.github_emulator.server import REST_ROUTES

READ_ONLY = {"contents": "read", "issues": "read", "pull_requests": "read", "metadata": "read"}
NOT_JSON = b"{not json"


@dataclass(frozen=True)
class Case:
    method: str
    spec_path: str
    path: str
    """Concrete path under /api/v3; `{name}` parts are filled from the world's ids."""
    auth: str
    """jwt, jwt_expired, jwt_garbage, token, read_only, other, bad, meta, user, user_expired,
    user_bad, none."""
    status: int
    body: Any = None

    def __str__(self) -> str:
        return f"{self.method} {self.path} as {self.auth} -> {self.status}"


def jwt_for(app_id: int, pem: str, lifetime: int = 540, age: int = 60) -> str:
    # PyJWT refuses an integer `iss`, which GitHub documents; sign the claims directly.
    now = int(time.time())
    claims = {"iat": now - age, "exp": now - age + lifetime, "iss": app_id}
    return jwt.PyJWS().encode(json.dumps(claims).encode(), pem, algorithm="RS256")


@pytest.fixture(scope="module")
def openapi() -> OpenAPI:
    # Checking the 13 MB description itself takes minutes and is GitHub's job, not ours.
    description = as_github_means_it(copy.deepcopy(openapi_description()))
    return OpenAPI.from_dict(description, config=Config(spec_validator_cls=None))


def as_github_means_it(node: Any) -> Any:
    """Two readings of the description the validator needs spelled out, changed in place:
    a `nullable` enum admits null (GitHub sends `conclusion: null` for a running check), and
    the 422 `oneOf` of validation-error and repository-rule-violation-error, which overlap so
    that no body matches exactly one, means either."""
    if isinstance(node, list):
        for item in node:
            as_github_means_it(item)
        return node
    if not isinstance(node, dict):
        return node
    if node.get("nullable") and "enum" in node and None not in node["enum"]:
        node["enum"] = [*node["enum"], None]
    refs = [choice.get("$ref", "") for choice in node.get("oneOf", [])]
    if any(ref.endswith("/repository-rule-violation-error") for ref in refs):
        node["anyOf"] = node.pop("oneOf")
    for value in node.values():
        as_github_means_it(value)
    return node


@pytest.fixture(scope="module")
def world() -> Iterator[tuple[GitHubEmulator, dict[str, Any]]]:
    """One app; installation `octo` (hello) with write access, `ro` (repo) read-only, `other`."""
    with GitHubEmulator() as emu:
        pem = emu.add_app(1)
        main = emu.add_installation(1, "octo")
        read_only = emu.add_installation(1, "ro", permissions=READ_ONLY)
        other = emu.add_installation(1, "other")
        for owner, name, installation in (
            ("octo", "hello", main),
            ("ro", "repo", read_only),
            ("other", "x", other),
        ):
            full = emu.add_repo(owner, name, {"README.md": "hello\n"}, installation)
            emu.set_permission(full, "alice", "write")
            emu.add_user("mallory")
            issue = emu.add_issue(full, "Crash on start", "It crashes.", "alice", labels=("bug",))
            assert issue == 1
            emu.commit_files(full, "fix", {"README.md": "fixed\n"}, "Fix it")
            emu.commit_files(full, "feature", {"NEW.md": "new\n"}, "Add a feature")
            assert emu.add_pull(full, "fix", "Fix the crash", "Fixes #1", "alice") == 2
        ids = {
            "inst": main,
            "c1": emu.add_comment("octo/hello", 1, "first", "alice"),
            "c_del": emu.add_comment("octo/hello", 1, "to delete", "alice"),
            "ro_c1": emu.add_comment("ro/repo", 1, "read only", "alice"),
            **review_world(emu),
            **git_world(emu),
        }
        fork_world(emu, other)
        meta = emu.add_installation(1, "meta", permissions={"metadata": "read"})
        emu.add_repo("meta", "repo", {"README.md": "hello\n"}, meta)
        tokens = {
            "jwt": jwt_for(1, pem),
            "jwt_expired": jwt_for(1, pem, lifetime=300, age=3600),
            "jwt_garbage": "not.a.jwt",
            "token": emu.installation_token(main),
            "read_only": emu.installation_token(read_only),
            "other": emu.installation_token(other),
            "bad": "ghs_" + "0" * 36,
            "meta": emu.installation_token(meta),
            **user_tokens(emu),
        }
        ids["meta_inst"] = meta
        ids.update(app_world(emu, tokens["token"]))
        ids.update(ci_world(emu))
        yield emu, {"ids": ids, "tokens": tokens}


def review_world(emu: GitHubEmulator) -> dict[str, Any]:
    """A review with one line comment on pull #2 of octo/hello and of ro/repo."""
    line = [{"path": "README.md", "line": 1, "body": "Why fixed?"}]
    review = emu.add_review("octo/hello", 2, "alice", "Looks odd", line)
    ro_review = emu.add_review("ro/repo", 2, "alice", "Looks odd", line)
    return {
        "review": review,
        "rc1": emu.review_threads("octo/hello", 2)[0]["comments"][0],
        "ro_rc1": emu.review_threads("ro/repo", 2)[0]["comments"][0],
        "ro_review": ro_review,
    }


def git_world(emu: GitHubEmulator) -> dict[str, Any]:
    """`scratch` to move, and a commit adding a workflow that no branch holds (the app may not
    point a ref at it without the `workflows` permission)."""
    emu.commit_files("octo/hello", "scratch", {"SCRATCH.md": "x\n"}, "Scratch")
    path = emu.world.repos["octo/hello"].path
    workflow = emu.commit_files("octo/hello", "ci", {".github/workflows/ci.yml": "on: push\n"})
    bare_repos.git("branch", "--quiet", "-D", "ci", cwd=path)
    main = emu.branches("octo/hello")["main"]
    return {"main": main, "main_tree": bare_repos.commit(path, main).tree, "workflow": workflow}


def fork_world(emu: GitHubEmulator, installation: int) -> None:
    """`other/hello`, a fork of octo/hello (installed on `other`, to be read), with pull #3 into
    octo/hello from its `main`; and `release`, a protected branch of octo/hello."""
    emu.add_fork("octo/hello", "other", installation_id=installation)
    emu.commit_files("other/hello", "main", {"README.md": "forked\n"}, "Fork it")
    assert emu.add_pull("octo/hello", "other:main", "From a fork", None, "mallory") == 3
    emu.commit_files("octo/hello", "release", {"RELEASE.md": "1.0\n"}, "Release")
    emu.protect_branch("octo/hello", "release")


def user_tokens(emu: GitHubEmulator) -> dict[str, str]:
    """alice's user-to-server tokens of app 1: live, expired, and one GitHub never issued."""
    expired = emu.user_token(1, "alice")
    emu.expire_user_token(expired)
    return {
        "user": emu.user_token(1, "alice"),
        "user_expired": expired,
        "user_bad": "ghu_" + "0" * 36,
    }


def app_world(emu: GitHubEmulator, token: str) -> dict[str, Any]:
    """A check run, a recorded webhook delivery (to a path the emulator 404s), a manifest code."""
    run = httpx.post(
        f"{emu.api_url}/repos/octo/hello/check-runs",
        headers={"Authorization": f"token {token}"},
        json={"name": "qwen-fix", "head_sha": emu.branches("octo/hello")["main"]},
    )
    emu.set_webhook(1, f"{emu.web_url}/hook", "s3cret")
    delivery = emu.send("ping", {"zen": "Keep it logically awesome.", "hook_id": 1}, app_id=1)
    code = emu.manifest_code({"name": "qwen fix", "url": "http://127.0.0.1/qwen-fix"})
    return {"run": run.json()["id"], "delivery": delivery["id"], "code": code}


def ci_world(emu: GitHubEmulator) -> dict[str, Any]:
    """A failing workflow run on `fix` (pull #2) with one annotated job, and a suite by another
    app with one run."""
    job = {
        "name": "test", "conclusion": "failure", "steps": ["Set up job", "Run tests"],
        "log": "FAILED test_a\n", "output": {"title": "1 failed", "summary": "test_a"},
        "annotations": [{"path": "src/app.py", "start_line": 2, "message": "assert 1 == 2"}],
    }  # fmt: skip
    run = emu.add_workflow_run("octo/hello", "fix", [job])
    suite = emu.add_check_suite("octo/hello", "main", head_branch="main")
    lint = emu.add_check_run("octo/hello", "main", "lint", "success", suite=suite)
    (listed,) = emu.workflow_jobs("octo/hello", run)
    return {"wf_run": run, "job": listed["id"], "suite": suite, "lint": lint}


def app_cases() -> list[Case]:
    tokens = "/app/installations/{installation_id}/access_tokens"
    repo_inst = "/repos/{owner}/{repo}/installation"
    one = "/app/installations/{installation_id}"
    return [
        Case("GET", "/app", "/app", "jwt", 200),
        Case("GET", "/app", "/app", "jwt_expired", 401),
        Case("GET", "/app/installations", "/app/installations", "jwt", 200),
        Case("GET", "/app/installations", "/app/installations", "jwt_garbage", 401),
        Case("GET", one, "/app/installations/{inst}", "jwt", 200),
        Case("GET", one, "/app/installations/99", "jwt", 404),
        Case("GET", one, "/app/installations/{inst}", "none", 401),
        Case("POST", tokens, "/app/installations/{inst}/access_tokens", "jwt", 201),
        Case("POST", tokens, "/app/installations/{inst}/access_tokens", "jwt", 201,
             {"repositories": ["hello"]}),
        Case("POST", tokens, "/app/installations/{inst}/access_tokens", "jwt", 422,
             {"repositories": ["nope"]}),
        Case("POST", tokens, "/app/installations/{inst}/access_tokens", "jwt", 400, NOT_JSON),
        Case("POST", tokens, "/app/installations/99/access_tokens", "jwt", 404),
        Case("POST", tokens, "/app/installations/{inst}/access_tokens", "token", 401),
        Case("GET", repo_inst, "/repos/octo/hello/installation", "jwt", 200),
        Case("GET", repo_inst, "/repos/nobody/nothing/installation", "jwt", 404),
        Case("GET", repo_inst, "/repos/octo/hello/installation", "none", 401),
    ]  # fmt: skip


def user_cases() -> list[Case]:
    """A person's token: alice reaches `octo`, `ro` and `other` through app 1, not `meta`."""
    installations = "/user/installations"
    repos = f"{installations}/{{installation_id}}/repositories"
    return [
        Case("GET", "/user", "/user", "user", 200),
        Case("GET", "/user", "/user", "user_expired", 401),
        Case("GET", "/user", "/user", "none", 401),
        Case("GET", "/user", "/user", "token", 403),
        Case("GET", "/user", "/user", "jwt", 403),
        Case("GET", installations, installations, "user", 200),
        Case("GET", installations, f"{installations}?per_page=1&page=2", "user", 200),
        Case("GET", installations, installations, "user_bad", 401),
        Case("GET", installations, installations, "token", 403),
        Case("GET", repos, f"{installations}/{{inst}}/repositories", "user", 200),
        Case("GET", repos, f"{installations}/{{inst}}/repositories?per_page=1", "user", 200),
        Case("GET", repos, f"{installations}/{{meta_inst}}/repositories", "user", 404),
        Case("GET", repos, f"{installations}/99/repositories", "user", 404),
        Case("GET", repos, f"{installations}/{{inst}}/repositories", "token", 403),
        Case("GET", repos, f"{installations}/{{inst}}/repositories", "user_expired", 401),
    ]


def repo_cases() -> list[Case]:
    repo = "/repos/{owner}/{repo}"
    permission = f"{repo}/collaborators/{{username}}/permission"
    ref = f"{repo}/git/ref/{{ref}}"
    return [
        Case("GET", repo, "/repos/octo/hello", "token", 200),
        Case("GET", repo, "/repos/other/hello", "other", 200),
        Case("GET", repo, "/repos/octo/hello", "other", 404),
        Case("GET", repo, "/repos/octo/hello", "bad", 401),
        Case("GET", repo, "/repos/octo/hello", "user", 200),
        Case("GET", repo, "/repos/meta/repo", "user", 404),
        Case("GET", repo, "/repos/octo/hello", "user_expired", 401),
        Case("GET", permission, "/repos/octo/hello/collaborators/alice/permission", "token", 200),
        Case("GET", permission, "/repos/octo/hello/collaborators/mallory/permission", "token", 200),
        Case("GET", permission, "/repos/octo/hello/collaborators/ghost/permission", "token", 404),
        Case("GET", permission, "/repos/octo/hello/collaborators/alice/permission", "none", 401),
        Case("GET", ref, "/repos/octo/hello/git/ref/heads/main", "token", 200),
        Case("GET", ref, "/repos/octo/hello/git/ref/heads/nope", "token", 404),
        Case("GET", ref, "/repos/octo/hello/git/ref/heads/main", "none", 401),
        Case("GET", f"{repo}/branches/{{branch}}", "/repos/octo/hello/branches/fix", "token", 200),
        Case("GET", f"{repo}/branches/{{branch}}", "/repos/octo/hello/branches/release", "token",
             200),
        Case("GET", f"{repo}/branches/{{branch}}", "/repos/octo/hello/branches/no", "token", 404),
        Case("GET", f"{repo}/branches/{{branch}}", "/repos/octo/hello/branches/fix", "none", 401),
    ]  # fmt: skip


def write_errors(method: str, spec: str, path: str, ro_path: str, body: Any) -> list[Case]:
    """The 403 (read-only installation), 404 and 401 every write route sends."""
    missing = re.sub(r"/(1|2|\{c1\})(?=/|$)", "/999", path)
    return [
        Case(method, spec, ro_path, "read_only", 403, body),
        Case(method, spec, missing, "token", 404, body),
        Case(method, spec, path, "none", 401, body),
    ]


def issue_cases() -> list[Case]:
    issue = "/repos/{owner}/{repo}/issues/{issue_number}"
    comment = "/repos/{owner}/{repo}/issues/comments/{comment_id}"
    hello, ro = "/repos/octo/hello", "/repos/ro/repo"
    return [
        Case("GET", issue, f"{hello}/issues/1", "token", 200),
        Case("GET", issue, f"{hello}/issues/2", "token", 200),
        Case("GET", issue, f"{hello}/issues/999", "token", 404),
        Case("GET", issue, f"{hello}/issues/1", "none", 401),
        Case("GET", f"{issue}/comments", f"{hello}/issues/1/comments", "token", 200),
        Case("GET", f"{issue}/comments", f"{hello}/issues/999/comments", "token", 404),
        Case("GET", f"{issue}/comments", f"{hello}/issues/1/comments", "none", 401),
        Case("POST", f"{issue}/comments", f"{hello}/issues/1/comments", "token", 201,
             {"body": "hi"}),
        Case("POST", f"{issue}/comments", f"{hello}/issues/1/comments", "token", 422, {}),
        Case("POST", f"{issue}/comments", f"{hello}/issues/1/comments", "token", 400, NOT_JSON),
        *write_errors("POST", f"{issue}/comments", f"{hello}/issues/1/comments",
                      f"{ro}/issues/1/comments", {"body": "hi"}),
        Case("GET", comment, f"{hello}/issues/comments/{{c1}}", "token", 200),
        Case("GET", comment, f"{hello}/issues/comments/999", "token", 404),
        Case("GET", comment, f"{hello}/issues/comments/{{c1}}", "none", 401),
        Case("PATCH", comment, f"{hello}/issues/comments/{{c1}}", "token", 200, {"body": "edited"}),
        Case("PATCH", comment, f"{hello}/issues/comments/{{c1}}", "token", 422, {"body": 5}),
        Case("PATCH", comment, f"{hello}/issues/comments/{{c1}}", "token", 400, NOT_JSON),
        *write_errors("PATCH", comment, f"{hello}/issues/comments/{{c1}}",
                      f"{ro}/issues/comments/{{ro_c1}}", {"body": "x"}),
        Case("DELETE", comment, f"{hello}/issues/comments/{{c_del}}", "token", 204),
        *write_errors("DELETE", comment, f"{hello}/issues/comments/{{c1}}",
                      f"{ro}/issues/comments/{{ro_c1}}", None),
        *reaction_cases(f"{issue}/reactions", f"{hello}/issues/1/reactions",
                        f"{ro}/issues/1/reactions"),
        *reaction_cases(f"{comment}/reactions", f"{hello}/issues/comments/{{c1}}/reactions",
                        f"{ro}/issues/comments/{{ro_c1}}/reactions"),
        Case("POST", f"{issue}/labels", f"{hello}/issues/1/labels", "token", 200,
             {"labels": ["qwen-fix"]}),
        Case("POST", f"{issue}/labels", f"{hello}/issues/1/labels", "token", 422, {"labels": []}),
        Case("POST", f"{issue}/labels", f"{hello}/issues/1/labels", "token", 400, NOT_JSON),
        *write_errors("POST", f"{issue}/labels", f"{hello}/issues/1/labels",
                      f"{ro}/issues/1/labels", ["x"]),
        Case("DELETE", f"{issue}/labels/{{name}}", f"{hello}/issues/1/labels/bug", "token", 200),
        Case("DELETE", f"{issue}/labels/{{name}}", f"{hello}/issues/1/labels/nope", "token", 404),
        Case("DELETE", f"{issue}/labels/{{name}}", f"{ro}/issues/1/labels/bug", "read_only", 403),
        Case("DELETE", f"{issue}/labels/{{name}}", f"{hello}/issues/1/labels/bug", "none", 401),
    ]  # fmt: skip


def reaction_cases(spec: str, path: str, ro_path: str) -> list[Case]:
    return [
        Case("POST", spec, path, "token", 201, {"content": "eyes"}),
        Case("POST", spec, path, "token", 200, {"content": "eyes"}),
        Case("POST", spec, path, "token", 422, {"content": "shrug"}),
        Case("POST", spec, path, "token", 400, NOT_JSON),
        *write_errors("POST", spec, path, ro_path, {"content": "eyes"}),
    ]


def pull_cases() -> list[Case]:
    pulls = "/repos/{owner}/{repo}/pulls"
    pull = f"{pulls}/{{pull_number}}"
    hello, ro = "/repos/octo/hello", "/repos/ro/repo"
    new = {"title": "Add a feature", "head": "octo:feature", "base": "main", "body": "Adds it"}
    reviewers = f"{pull}/requested_reviewers"
    return [
        Case("GET", pulls, f"{hello}/pulls", "token", 200),
        Case("GET", pulls, f"{hello}/pulls?head=octo:fix&state=all&base=main", "token", 200),
        Case("GET", pulls, f"{hello}/pulls", "other", 404),
        Case("GET", pulls, f"{hello}/pulls", "none", 401),
        Case("POST", pulls, f"{hello}/pulls", "token", 201, new),
        Case("POST", pulls, f"{hello}/pulls", "token", 422, new),
        Case("POST", pulls, f"{hello}/pulls", "token", 422, {**new, "head": "missing"}),
        Case("POST", pulls, f"{hello}/pulls", "token", 422, {"head": "feature", "base": "main"}),
        Case("POST", pulls, f"{hello}/pulls", "token", 400, NOT_JSON),
        Case("POST", pulls, f"{ro}/pulls", "read_only", 403, new),
        Case("POST", pulls, f"{hello}/pulls", "other", 404, new),
        Case("POST", pulls, f"{hello}/pulls", "none", 401, new),
        Case("GET", pull, f"{hello}/pulls/2", "token", 200),
        Case("GET", pull, f"{hello}/pulls/3", "token", 200),
        Case("GET", pull, f"{hello}/pulls/1", "token", 404),
        Case("GET", pull, f"{hello}/pulls/2", "none", 401),
        Case("PATCH", pull, f"{hello}/pulls/2", "token", 200, {"title": "Fix the crash, really"}),
        Case("PATCH", pull, f"{hello}/pulls/2", "token", 422, {"state": "merged"}),
        Case("PATCH", pull, f"{hello}/pulls/2", "token", 400, NOT_JSON),
        *write_errors("PATCH", pull, f"{hello}/pulls/2", f"{ro}/pulls/2", {"title": "x"}),
        Case("POST", reviewers, f"{hello}/pulls/2/requested_reviewers", "token", 201,
             {"reviewers": ["alice"]}),
        Case("POST", reviewers, f"{hello}/pulls/2/requested_reviewers", "token", 422,
             {"reviewers": ["mallory"]}),
        Case("POST", reviewers, f"{hello}/pulls/2/requested_reviewers", "token", 400, NOT_JSON),
        *write_errors("POST", reviewers, f"{hello}/pulls/2/requested_reviewers",
                      f"{ro}/pulls/2/requested_reviewers", {"reviewers": ["alice"]}),
    ]  # fmt: skip


def hidden_errors(method: str, spec: str, path: str, ro_path: str, body: Any) -> list[Case]:
    """403 for the read-only installation, 404 for one that cannot see the repo, 401."""
    return [
        Case(method, spec, ro_path, "read_only", 403, body),
        Case(method, spec, path, "other", 404, body),
        Case(method, spec, path, "none", 401, body),
    ]


def more_issue_cases() -> list[Case]:
    issue = "/repos/{owner}/{repo}/issues/{issue_number}"
    hello, ro = "/repos/octo/hello", "/repos/ro/repo"
    return [
        Case("PATCH", issue, f"{hello}/issues/1", "token", 200, {"title": "Crash at start"}),
        Case("PATCH", issue, f"{hello}/issues/1", "token", 422, {"state": "merged"}),
        Case("PATCH", issue, f"{hello}/issues/1", "token", 422, {"body": "x" * 65537}),
        Case("PATCH", issue, f"{hello}/issues/1", "token", 400, NOT_JSON),
        *write_errors("PATCH", issue, f"{hello}/issues/1", f"{ro}/issues/1", {"title": "x"}),
        Case("GET", f"{issue}/labels", f"{hello}/issues/1/labels", "token", 200),
        Case("GET", f"{issue}/labels", f"{hello}/issues/999/labels", "token", 404),
        Case("GET", f"{issue}/labels", f"{hello}/issues/1/labels", "none", 401),
        Case("POST", f"{issue}/comments", f"{hello}/issues/1/comments", "token", 422,
             {"body": "x" * 65537}),
    ]  # fmt: skip


def review_cases() -> list[Case]:
    pull = "/repos/{owner}/{repo}/pulls/{pull_number}"
    comment = "/repos/{owner}/{repo}/pulls/comments/{comment_id}"
    replies = f"{pull}/comments/{{comment_id}}/replies"
    hello, ro = "/repos/octo/hello", "/repos/ro/repo"
    reactions = f"{hello}/pulls/comments/{{rc1}}/reactions"
    on_review = f"{pull}/reviews/{{review_id}}/comments"
    return [
        Case("GET", f"{pull}/comments", f"{hello}/pulls/2/comments", "token", 200),
        Case("GET", f"{pull}/comments", f"{hello}/pulls/1/comments", "token", 404),
        Case("GET", f"{pull}/comments", f"{hello}/pulls/2/comments", "none", 401),
        Case("GET", comment, f"{hello}/pulls/comments/{{rc1}}", "token", 200),
        Case("GET", comment, f"{hello}/pulls/comments/999", "token", 404),
        Case("GET", comment, f"{hello}/pulls/comments/{{rc1}}", "none", 401),
        Case("POST", replies, f"{hello}/pulls/2/comments/{{rc1}}/replies", "token", 201,
             {"body": "On it"}),
        Case("POST", replies, f"{hello}/pulls/2/comments/{{rc1}}/replies", "token", 422, {}),
        Case("POST", replies, f"{hello}/pulls/2/comments/{{rc1}}/replies", "token", 400,
             NOT_JSON),
        Case("POST", replies, f"{hello}/pulls/2/comments/999/replies", "token", 404,
             {"body": "x"}),
        *hidden_errors("POST", replies, f"{hello}/pulls/2/comments/{{rc1}}/replies",
                       f"{ro}/pulls/2/comments/{{ro_rc1}}/replies", {"body": "x"}),
        Case("POST", f"{comment}/reactions", reactions, "token", 201, {"content": "eyes"}),
        Case("POST", f"{comment}/reactions", reactions, "token", 200, {"content": "eyes"}),
        Case("POST", f"{comment}/reactions", reactions, "token", 422, {"content": "shrug"}),
        Case("POST", f"{comment}/reactions", reactions, "token", 400, NOT_JSON),
        *hidden_errors("POST", f"{comment}/reactions", reactions,
                       f"{ro}/pulls/comments/{{ro_rc1}}/reactions", {"content": "eyes"}),
        Case("GET", f"{pull}/reviews", f"{hello}/pulls/2/reviews", "token", 200),
        Case("GET", f"{pull}/reviews", f"{hello}/pulls/1/reviews", "token", 404),
        Case("GET", f"{pull}/reviews", f"{hello}/pulls/2/reviews", "none", 401),
        Case("GET", on_review, f"{hello}/pulls/2/reviews/{{review}}/comments", "token", 200),
        Case("GET", on_review, f"{hello}/pulls/2/reviews/999/comments", "token", 404),
        Case("GET", on_review, f"{hello}/pulls/2/reviews/{{review}}/comments", "none", 401),
    ]  # fmt: skip


def check_cases() -> list[Case]:
    runs = "/repos/{owner}/{repo}/check-runs"
    run = f"{runs}/{{check_run_id}}"
    for_ref = "/repos/{owner}/{repo}/commits/{ref}/check-runs"
    hello, ro = "/repos/octo/hello", "/repos/ro/repo"
    new = {"name": "qwen-fix", "head_sha": "{main}", "status": "in_progress"}
    too_long = {"title": "Tests", "summary": "ok", "text": "x" * 65536}
    return [
        Case("POST", runs, f"{hello}/check-runs", "token", 201, new),
        Case("POST", runs, f"{hello}/check-runs", "token", 422, {**new, "output": too_long}),
        Case("POST", runs, f"{hello}/check-runs", "token", 422, {**new, "head_sha": "0" * 40}),
        Case("POST", runs, f"{hello}/check-runs", "token", 400, NOT_JSON),
        *hidden_errors("POST", runs, f"{hello}/check-runs", f"{ro}/check-runs", new),
        Case("PATCH", run, f"{hello}/check-runs/{{run}}", "token", 200,
             {"conclusion": "success", "output": {"title": "Tests", "summary": "All pass"}}),
        Case("PATCH", run, f"{hello}/check-runs/{{run}}", "token", 422, {"output": too_long}),
        Case("PATCH", run, f"{hello}/check-runs/{{run}}", "token", 400, NOT_JSON),
        Case("PATCH", run, f"{hello}/check-runs/999", "token", 404, {"status": "queued"}),
        *hidden_errors("PATCH", run, f"{hello}/check-runs/{{run}}", f"{ro}/check-runs/999",
                       {"status": "queued"}),
        Case("GET", for_ref, f"{hello}/commits/main/check-runs", "token", 200),
        Case("GET", for_ref, f"{hello}/commits/{{main}}/check-runs?filter=all", "token", 200),
        Case("GET", for_ref, f"{hello}/commits/nope/check-runs", "token", 422),
        *hidden_errors("GET", for_ref, f"{hello}/commits/main/check-runs",
                       f"{ro}/commits/main/check-runs", None),
    ]  # fmt: skip


def ci_cases() -> list[Case]:
    hello, ro = "/repos/octo/hello", "/repos/ro/repo"
    run = "/repos/{owner}/{repo}/check-runs/{check_run_id}"
    suite = "/repos/{owner}/{repo}/check-suites/{check_suite_id}"
    suites = "/repos/{owner}/{repo}/commits/{ref}/check-suites"
    return [
        *read_cases(run, f"{hello}/check-runs/{{job}}", f"{ro}/check-runs/1"),
        *read_cases(f"{run}/annotations", f"{hello}/check-runs/{{job}}/annotations",
                    f"{ro}/check-runs/1/annotations"),
        *read_cases(suite, f"{hello}/check-suites/{{suite}}", f"{ro}/check-suites/1"),
        *read_cases(f"{suite}/check-runs", f"{hello}/check-suites/{{suite}}/check-runs",
                    f"{ro}/check-suites/1/check-runs"),
        Case("GET", suites, f"{hello}/commits/fix/check-suites", "token", 200),
        Case("GET", suites, f"{hello}/commits/{{main}}/check-suites?app_id=1", "token", 200),
        Case("GET", suites, f"{hello}/commits/nope/check-suites", "token", 422),
        *hidden_errors("GET", suites, f"{hello}/commits/main/check-suites",
                       f"{ro}/commits/main/check-suites", None),
    ]  # fmt: skip


def actions_cases() -> list[Case]:
    hello, ro = "/repos/octo/hello", "/repos/ro/repo"
    run = "/repos/{owner}/{repo}/actions/runs/{run_id}"
    job = "/repos/{owner}/{repo}/actions/jobs/{job_id}"
    return [
        *read_cases(run, f"{hello}/actions/runs/{{wf_run}}", f"{ro}/actions/runs/1"),
        *read_cases(f"{run}/jobs", f"{hello}/actions/runs/{{wf_run}}/jobs",
                    f"{ro}/actions/runs/1/jobs"),
        *read_cases(job, f"{hello}/actions/jobs/{{job}}", f"{ro}/actions/jobs/1"),
        Case("GET", f"{job}/logs", f"{hello}/actions/jobs/{{job}}/logs", "token", 302),
        Case("GET", f"{job}/logs", f"{hello}/actions/jobs/999/logs", "token", 404),
        *hidden_errors("GET", f"{job}/logs", f"{hello}/actions/jobs/{{job}}/logs",
                       f"{ro}/actions/jobs/1/logs", None),
    ]  # fmt: skip


def read_cases(spec: str, path: str, ro_path: str) -> list[Case]:
    """200, 404 for a missing id, and 403/404/401 of a read route with one id in its path."""
    missing = re.sub(r"/\{\w+\}(?=/|$)", "/999", path)
    return [
        Case("GET", spec, path, "token", 200),
        Case("GET", spec, missing, "token", 404),
        *hidden_errors("GET", spec, path, ro_path, None),
    ]


def git_cases() -> list[Case]:
    git = "/repos/{owner}/{repo}/git"
    hello, ro = "/repos/octo/hello", "/repos/ro/repo"
    blob = {"content": "aGk=", "encoding": "base64"}
    tree = {
        "base_tree": "{main_tree}",
        "tree": [{"path": "docs/a.md", "mode": "100644", "type": "blob", "content": "a"}],
    }
    commit = {"message": "Change", "tree": "{main_tree}", "parents": ["{main}"]}
    contents = "/repos/{owner}/{repo}/contents/{path}"
    return [
        Case("POST", f"{git}/blobs", f"{hello}/git/blobs", "token", 201, blob),
        Case("POST", f"{git}/blobs", f"{hello}/git/blobs", "token", 422, {}),
        Case("POST", f"{git}/blobs", f"{hello}/git/blobs", "token", 400, NOT_JSON),
        *hidden_errors("POST", f"{git}/blobs", f"{hello}/git/blobs", f"{ro}/git/blobs", blob),
        Case("POST", f"{git}/trees", f"{hello}/git/trees", "token", 201, tree),
        Case("POST", f"{git}/trees", f"{hello}/git/trees", "token", 422, {"tree": []}),
        Case("POST", f"{git}/trees", f"{hello}/git/trees", "token", 400, NOT_JSON),
        *hidden_errors("POST", f"{git}/trees", f"{hello}/git/trees", f"{ro}/git/trees", tree),
        Case("POST", f"{git}/commits", f"{hello}/git/commits", "token", 201, commit),
        Case("POST", f"{git}/commits", f"{hello}/git/commits", "token", 422,
             {**commit, "tree": "0" * 40}),
        Case("POST", f"{git}/commits", f"{hello}/git/commits", "token", 400, NOT_JSON),
        *hidden_errors("POST", f"{git}/commits", f"{hello}/git/commits", f"{ro}/git/commits",
                       commit),
        Case("GET", f"{git}/commits/{{commit_sha}}", f"{hello}/git/commits/{{main}}", "token",
             200),
        Case("GET", f"{git}/commits/{{commit_sha}}", f"{hello}/git/commits/{'0' * 40}", "token",
             404),
        Case("GET", f"{git}/commits/{{commit_sha}}", f"{hello}/git/commits/{{main}}", "none", 401),
        Case("POST", f"{git}/refs", f"{hello}/git/refs", "token", 201,
             {"ref": "refs/heads/made-by-api", "sha": "{main}"}),
        Case("POST", f"{git}/refs", f"{hello}/git/refs", "token", 422,
             {"ref": "refs/heads/main", "sha": "{main}"}),
        Case("POST", f"{git}/refs", f"{hello}/git/refs", "token", 400, NOT_JSON),
        Case("POST", f"{git}/refs", f"{hello}/git/refs", "token", 403,
             {"ref": "refs/heads/ci", "sha": "{workflow}"}),
        *hidden_errors("POST", f"{git}/refs", f"{hello}/git/refs", f"{ro}/git/refs",
                       {"ref": "refs/heads/x", "sha": "{main}"}),
        Case("PATCH", f"{git}/refs/{{ref}}", f"{hello}/git/refs/heads/scratch", "token", 200,
             {"sha": "{main}", "force": True}),
        Case("PATCH", f"{git}/refs/{{ref}}", f"{hello}/git/refs/heads/fix", "token", 422,
             {"sha": "{main}"}),
        Case("PATCH", f"{git}/refs/{{ref}}", f"{hello}/git/refs/heads/fix", "token", 400,
             NOT_JSON),
        Case("PATCH", f"{git}/refs/{{ref}}", f"{hello}/git/refs/heads/scratch", "token", 403,
             {"sha": "{workflow}", "force": True}),
        Case("PATCH", f"{git}/refs/{{ref}}", f"{hello}/git/refs/heads/release", "token", 422,
             {"sha": "{main}", "force": True}),
        *hidden_errors("PATCH", f"{git}/refs/{{ref}}", f"{hello}/git/refs/heads/fix",
                       f"{ro}/git/refs/heads/fix", {"sha": "{main}"}),
        Case("GET", contents, f"{hello}/contents/README.md", "token", 200),
        Case("GET", contents, f"{hello}/contents/README.md?ref=fix", "token", 200),
        Case("GET", contents, f"{hello}/contents/docs/missing.md", "token", 404),
        Case("GET", contents, "/repos/meta/repo/contents/README.md", "meta", 403),
        Case("GET", contents, f"{hello}/contents/README.md", "none", 401),
    ]  # fmt: skip


def delivery_cases() -> list[Case]:
    deliveries = "/app/hook/deliveries"
    one = f"{deliveries}/{{delivery_id}}"
    conversions = "/app-manifests/{code}/conversions"
    return [
        Case("GET", deliveries, deliveries, "jwt", 200),
        Case("GET", deliveries, f"{deliveries}?per_page=1&status=failure", "jwt", 200),
        Case("GET", deliveries, f"{deliveries}?cursor=garbage", "jwt", 400),
        Case("GET", deliveries, f"{deliveries}?status=sideways", "jwt", 422),
        Case("GET", deliveries, deliveries, "token", 401),
        Case("GET", one, f"{deliveries}/{{delivery}}", "jwt", 200),
        Case("GET", one, f"{deliveries}/999", "jwt", 404),
        Case("GET", one, f"{deliveries}/{{delivery}}", "none", 401),
        Case("POST", f"{one}/attempts", f"{deliveries}/{{delivery}}/attempts", "jwt", 202),
        Case("POST", f"{one}/attempts", f"{deliveries}/999/attempts", "jwt", 404),
        Case("POST", f"{one}/attempts", f"{deliveries}/{{delivery}}/attempts", "none", 401),
        Case("POST", conversions, "/app-manifests/{code}/conversions", "none", 201),
        Case("POST", conversions, "/app-manifests/{code}/conversions", "none", 404),
    ]


CASES = [
    *app_cases(),
    *user_cases(),
    *repo_cases(),
    *issue_cases(),
    *pull_cases(),
    *more_issue_cases(),
    *review_cases(),
    *check_cases(),
    *ci_cases(),
    *actions_cases(),
    *git_cases(),
    *delivery_cases(),
]


def send(emu: GitHubEmulator, state: dict[str, Any], case: Case) -> httpx.Response:
    headers = {"Accept": "application/vnd.github+json"}
    if case.auth != "none":
        scheme = "Bearer" if case.auth.startswith(("jwt", "user")) else "token"
        headers["Authorization"] = f"{scheme} {state['tokens'][case.auth]}"
    content = case.body if isinstance(case.body, bytes) else None
    if case.body is not None and content is None:
        content = json.dumps(filled(case.body, state["ids"])).encode()
    url = emu.api_url + case.path.format(**state["ids"])
    return httpx.request(case.method, url, headers=headers, content=content, timeout=30)


def filled(body: Any, ids: dict[str, Any]) -> Any:
    """The body with `{name}` strings replaced by the world's ids (shas, tree ids)."""
    if isinstance(body, str) and re.fullmatch(r"\{\w+\}", body):
        return ids[body[1:-1]]
    if isinstance(body, dict):
        return {key: filled(value, ids) for key, value in body.items()}
    if isinstance(body, list):
        return [filled(value, ids) for value in body]
    return body


def validate(openapi: OpenAPI, case: Case, response: httpx.Response) -> None:
    """Check the response against the operation's responses, or the shared error schema when
    the description does not list that status for the operation (GitHub sends 401 and 404
    on every authenticated route)."""
    path, _, query = response.request.url.raw_path.decode().partition("?")
    request = MockRequest(
        "https://api.github.com",
        case.method,
        path.removeprefix(API_PREFIX),
        # Given, so refs with slashes (heads/main) match their one-segment template.
        path_pattern=case.spec_path,
        args=dict(httpx.QueryParams(query)),
    )
    documented = openapi_description()["paths"][case.spec_path][case.method.lower()]["responses"]
    if str(case.status) in documented:
        mock = MockResponse(
            response.content,
            status_code=response.status_code,
            headers=dict(response.headers),
            content_type=response.headers.get("content-type", "application/json"),
        )
        openapi.validate_response(request, mock)
    else:
        error_schema = openapi_description()["components"]["schemas"]["basic-error"]
        OAS30Validator(error_schema).validate(response.json())
        assert response.json()["message"]


@pytest.mark.parametrize("case", CASES, ids=str)
def test_response_conforms(
    openapi: OpenAPI, world: tuple[GitHubEmulator, dict[str, Any]], case: Case
) -> None:
    emu, state = world
    response = send(emu, state, case)
    assert response.status_code == case.status, response.text
    validate(openapi, case, response)


def test_cases_cover_every_route_and_status() -> None:
    served = {(r.method, r.spec_path, status) for r in REST_ROUTES for status in r.statuses}
    covered = {(case.method, case.spec_path, case.status) for case in CASES}
    assert served - covered == set(), "routes or statuses the conformance cases miss"
    assert covered - served == set(), "cases for routes or statuses the emulator does not declare"


def test_every_route_is_a_github_operation() -> None:
    paths = openapi_description()["paths"]
    for route in REST_ROUTES:
        assert route.method.lower() in paths.get(route.spec_path, {}), route.spec_path


def test_every_rest_path_is_declared() -> None:
    """Drift: the app serves exactly the declared REST routes, besides git's."""
    emu = GitHubEmulator()
    try:
        served = {
            (method, route.path)
            for route in emu.app.routes
            if isinstance(route, Route) and route.path.startswith(API_PREFIX)
            for method in (route.methods or set()) - {"HEAD"}
        }
    finally:
        emu.stop()
    assert served == {(route.method, route.path) for route in REST_ROUTES}
