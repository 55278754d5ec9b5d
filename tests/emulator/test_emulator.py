"""The emulator through real clients: githubkit for REST, the git CLI for clone and push."""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from githubkit import AppAuthStrategy, GitHub
from githubkit.exception import RequestFailed
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.github_emulator import GitHubEmulator, signature_of
from tests.github_emulator.server import ServerThread

# githubkit caches JWTs and tokens per process by app id: each test gets its own app id so a
# key from an earlier test's emulator is never reused.
app_idS = itertools.count(42)


@pytest.fixture
def emu(tmp_path: Path) -> Iterator[GitHubEmulator]:
    with GitHubEmulator(tmp_path / "github") as emulator:
        yield emulator


@pytest.fixture
def app_id() -> int:
    return next(app_idS)


def app_client(emu: GitHubEmulator, app_id: int, pem: str) -> GitHub[AppAuthStrategy]:
    return GitHub(AppAuthStrategy(app_id, pem), base_url=emu.api_url)


def git(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    # No prompts and no machine config: a missing credential must fail, not hang.
    env = {"PATH": "/usr/bin:/bin", "HOME": str(cwd), "GIT_TERMINAL_PROMPT": "0"}
    env |= {"GIT_CONFIG_NOSYSTEM": "1", "GIT_AUTHOR_NAME": "bot", "GIT_AUTHOR_EMAIL": "b@x"}
    env |= {"GIT_COMMITTER_NAME": "bot", "GIT_COMMITTER_EMAIL": "b@x"}
    return subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True)


def with_token(url: str, token: str) -> str:
    return url.replace("http://", f"http://x-access-token:{token}@")


def test_githubkit_drives_issues_and_pulls(emu: GitHubEmulator, app_id: int) -> None:
    pem = emu.add_app(app_id)
    installation_id = emu.add_installation(app_id, "octo")
    emu.add_repo("octo", "hello", {"README.md": "hi\n"}, installation_id)
    emu.set_permission("octo/hello", "alice", "maintain")
    number = emu.add_issue("octo/hello", "Crash", "It crashes", "alice", labels=("qwen-fix",))
    emu.commit_files("octo/hello", "qwen-fix/1", {"fix.txt": "fixed\n"}, "Fix crash")

    github = app_client(emu, app_id, pem)
    installation = github.rest.apps.get_repo_installation("octo", "hello").parsed_data
    assert installation.id == installation_id
    installed = github.with_auth(github.auth.as_installation(installation.id))
    repo_api = installed.rest

    repo = repo_api.repos.get("octo", "hello").parsed_data
    assert (repo.default_branch, repo.clone_url) == ("main", emu.clone_url("octo/hello"))
    permission = repo_api.repos.get_collaborator_permission_level("octo", "hello", "alice")
    assert (permission.parsed_data.permission, permission.parsed_data.role_name) == (
        "write",
        "maintain",
    )
    assert repo_api.issues.get("octo", "hello", number).parsed_data.title == "Crash"

    comment = repo_api.issues.create_comment("octo", "hello", number, body="On it").parsed_data
    repo_api.issues.update_comment("octo", "hello", comment.id, body="Done")
    repo_api.reactions.create_for_issue_comment("octo", "hello", comment.id, content="rocket")
    repo_api.reactions.create_for_issue("octo", "hello", number, content="eyes")
    repo_api.issues.remove_label("octo", "hello", number, "qwen-fix")
    listed = repo_api.issues.list_comments("octo", "hello", number).parsed_data
    assert [c.body for c in listed] == ["Done"]
    assert [r["content"] for r in emu.reactions("octo/hello", issue=number)] == ["eyes"]
    assert emu.issue("octo/hello", number)["labels"] == []

    main_sha = repo_api.git.get_ref("octo", "hello", "heads/main").parsed_data.object_.sha
    assert main_sha == emu.branches("octo/hello")["main"]
    pull = repo_api.pulls.create(
        "octo", "hello", title="Fix crash", head="qwen-fix/1", base="main", body="Fixes #1"
    ).parsed_data
    assert pull.number == number + 1, "pulls and issues share one number sequence"
    with pytest.raises(RequestFailed) as exists:
        repo_api.pulls.create("octo", "hello", title="Again", head="qwen-fix/1", base="main")
    assert exists.value.response.status_code == 422
    found = repo_api.pulls.list("octo", "hello", head="octo:qwen-fix/1", state="open").parsed_data
    assert [p.number for p in found] == [pull.number]
    repo_api.pulls.request_reviewers("octo", "hello", pull.number, reviewers=["alice"])
    repo_api.pulls.update("octo", "hello", pull.number, body="Fixes #1, tested")
    assert emu.pulls("octo/hello") == [
        {
            "number": pull.number,
            "state": "open",
            "title": "Fix crash",
            "body": "Fixes #1, tested",
            "draft": False,
            "head": "qwen-fix/1",
            "base": "main",
            "requested_reviewers": ["alice"],
            "labels": [],
        }
    ]
    assert {r.auth for r in emu.requests} == {"app", "installation"}


def test_a_token_only_works_for_its_installation(emu: GitHubEmulator, app_id: int) -> None:
    pem = emu.add_app(app_id)
    mine = emu.add_installation(app_id, "octo")
    theirs = emu.add_installation(app_id, "other")
    emu.add_repo("octo", "hello", {"README.md": "hi\n"}, mine)
    github = app_client(emu, app_id, pem)
    other = github.with_auth(github.auth.as_installation(theirs))
    with pytest.raises(RequestFailed) as hidden:
        other.rest.repos.get("octo", "hello")
    assert hidden.value.response.status_code == 404


def test_a_jwt_signed_by_another_key_is_rejected(emu: GitHubEmulator, app_id: int) -> None:
    emu.add_app(app_id)
    other_pem = emu.add_app(app_id + 1000)
    forged = GitHub(AppAuthStrategy(app_id, other_pem), base_url=emu.api_url)
    with pytest.raises(RequestFailed) as denied:
        forged.rest.apps.get_authenticated()
    assert denied.value.response.status_code == 401
    assert set(denied.value.response.json()) >= {"message", "documentation_url"}


def test_git_clone_and_push_need_the_installation_token(
    emu: GitHubEmulator, app_id: int, tmp_path: Path
) -> None:
    emu.add_app(app_id)
    mine = emu.add_installation(app_id, "octo")
    theirs = emu.add_installation(app_id, "other")
    emu.add_repo("octo", "hello", {"README.md": "hi\n", "src/app.py": "x = 1\n"}, mine)
    url = emu.clone_url("octo/hello")
    token, other_token = emu.installation_token(mine), emu.installation_token(theirs)

    refused = git("clone", url, "anon", cwd=tmp_path)
    # The 401 challenge makes git ask for credentials, which it may not do here.
    assert refused.returncode != 0 and "could not read Username" in refused.stderr
    wrong = git("clone", with_token(url, "ghs_" + "x" * 36), "wrong", cwd=tmp_path)
    assert wrong.returncode != 0
    foreign = git("clone", with_token(url, other_token), "foreign", cwd=tmp_path)
    assert foreign.returncode != 0 and "not found" in foreign.stderr.lower()

    cloned = git("clone", with_token(url, token), "work", cwd=tmp_path)
    assert cloned.returncode == 0, cloned.stderr
    work = tmp_path / "work"
    assert (work / "src" / "app.py").read_text() == "x = 1\n"
    (work / "src" / "app.py").write_text("x = 2\n")
    assert git("checkout", "-b", "qwen-fix/1", cwd=work).returncode == 0
    assert git("commit", "-am", "Fix x", cwd=work).returncode == 0
    pushed = git("push", "origin", "qwen-fix/1", cwd=work)
    assert pushed.returncode == 0, pushed.stderr
    assert emu.file_at("octo/hello", "qwen-fix/1", "src/app.py") == "x = 2\n"
    assert set(emu.branches("octo/hello")) == {"main", "qwen-fix/1"}

    git("remote", "set-url", "origin", url, cwd=work)
    denied = git("push", "origin", "qwen-fix/1:other", cwd=work)
    assert denied.returncode != 0
    assert "other" not in emu.branches("octo/hello")


def test_webhook_payload_matches_state_and_is_signed(emu: GitHubEmulator, app_id: int) -> None:
    emu.add_app(app_id)
    installation = emu.add_installation(app_id, "octo")
    emu.add_repo("octo", "hello", {"README.md": "hi\n"}, installation)
    number = emu.add_issue("octo/hello", "Crash", "It crashes", "alice")
    emu.add_label("octo/hello", "qwen-fix", issue=number)
    payload = emu.webhook("issues", "labeled", repo="octo/hello", issue=number,
                          label="qwen-fix", sender="alice")  # fmt: skip
    assert payload["action"] == "labeled"
    assert payload["installation"]["id"] == installation
    assert payload["repository"]["full_name"] == "octo/hello"
    assert payload["repository"]["clone_url"] == emu.clone_url("octo/hello")
    assert payload["issue"]["number"] == number
    assert payload["label"]["name"] == "qwen-fix"
    assert payload["sender"]["login"] == "alice"

    received: list[tuple[dict[str, str], bytes]] = []

    async def hook(request: Request) -> Response:
        received.append((dict(request.headers), await request.body()))
        return Response(status_code=202)

    receiver = ServerThread()
    receiver.start(Starlette(routes=[Route("/hook", hook, methods=["POST"])]))
    try:
        url = f"http://127.0.0.1:{receiver.port}/hook"
        answer = emu.deliver(url, "issues", payload, "s3cret", delivery_id="d-1")
        forged = emu.deliver(url, "issues", payload, "s3cret", signature="sha256=" + "0" * 64)
    finally:
        receiver.stop()
    assert (answer.status_code, forged.status_code) == (202, 202)
    (headers, body), (forged_headers, _) = received
    expected = "sha256=" + hmac.new(b"s3cret", body, hashlib.sha256).hexdigest()
    assert headers["x-hub-signature-256"] == expected
    assert forged_headers["x-hub-signature-256"] != signature_of("s3cret", body)
    assert headers["x-github-event"] == "issues"
    assert headers["x-github-delivery"] == "d-1"
    assert headers["user-agent"].startswith("GitHub-Hookshot/")
    assert headers["content-type"] == "application/json"
    assert json.loads(body) == payload
