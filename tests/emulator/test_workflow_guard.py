"""Pushes and ref updates as GitHub refuses them to an app: `contents: write` to push, and the
`workflows` permission to create, change or delete files under .github/workflows/."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from githubkit import AppInstallationAuthStrategy, GitHub
from githubkit.exception import RequestFailed

from tests.emulator.conftest import APP_IDS
from tests.github_emulator import GitHubEmulator

WORKFLOW = ".github/workflows/ci.yml"
FILES = {"README.md": "hello\n", WORKFLOW: "on: push\n"}
WRITER = {"contents": "write", "metadata": "read"}
REFUSED = (
    f"refusing to allow a GitHub App to create or update workflow `{WORKFLOW}` "
    "without `workflows` permission"
)


@dataclass
class Site:
    """One app; `octo/hello` installed without `workflows`, `trusted/hello` with it, and
    `reader/hello` with `contents: read` only."""

    emu: GitHubEmulator
    app_id: int
    pem: str
    installations: dict[str, int]

    def url(self, owner: str) -> str:
        token = self.emu.installation_token(self.installations[owner])
        return self.emu.clone_url(f"{owner}/hello").replace(
            "http://", f"http://x-access-token:{token}@"
        )

    def client(self, owner: str) -> GitHub[AppInstallationAuthStrategy]:
        strategy = AppInstallationAuthStrategy(self.app_id, self.pem, self.installations[owner])
        return GitHub(strategy, base_url=self.emu.api_url)


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    with GitHubEmulator(tmp_path / "github") as emu:
        app_id = next(APP_IDS)
        pem = emu.add_app(app_id)
        permissions = {
            "octo": WRITER,
            "trusted": {**WRITER, "workflows": "write"},
            "reader": {"contents": "read", "metadata": "read"},
        }
        installations = {}
        for owner, granted in permissions.items():
            installations[owner] = emu.add_installation(app_id, owner, permissions=granted)
            emu.add_repo(owner, "hello", FILES, installations[owner])
        yield Site(emu, app_id, pem, installations)


def git(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(cwd), "GIT_TERMINAL_PROMPT": "0"}
    env |= {"GIT_CONFIG_NOSYSTEM": "1", "GIT_AUTHOR_NAME": "bot", "GIT_AUTHOR_EMAIL": "b@x"}
    env |= {"GIT_COMMITTER_NAME": "bot", "GIT_COMMITTER_EMAIL": "b@x"}
    return subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True)


def clone(site: Site, owner: str, work: Path, branch: str = "main") -> Path:
    cloned = git(
        "clone", "--quiet", "--branch", branch, site.url(owner), str(work), cwd=work.parent
    )
    assert cloned.returncode == 0, cloned.stderr
    return work


def commit(work: Path, files: dict[str, str | None], message: str = "Change") -> str:
    """Write (or, for None, delete) files and commit them; returns the sha."""
    for name, text in files.items():
        if text is None:
            (work / name).unlink()
        else:
            (work / name).parent.mkdir(parents=True, exist_ok=True)
            (work / name).write_text(text)
    assert git("add", "--all", cwd=work).returncode == 0
    committed = git("commit", "--quiet", "-m", message, cwd=work)
    assert committed.returncode == 0, committed.stderr
    return git("rev-parse", "HEAD", cwd=work).stdout.strip()


def rejected(source: str, branch: str, reason: str = REFUSED) -> str:
    return f" ! [remote rejected] {source} -> {branch} ({reason})"


def test_a_push_changing_a_workflow_is_refused_and_leaves_the_branch(
    site: Site, tmp_path: Path
) -> None:
    before = site.emu.commit_files("octo/hello", "qwen-fix/1", {"fix.txt": "1\n"})
    work = clone(site, "octo", tmp_path / "work", "qwen-fix/1")
    commit(work, {"fix.txt": "2\n", WORKFLOW: "on: [push, pull_request]\n"})

    pushed = git("push", "origin", "qwen-fix/1", cwd=work)

    assert pushed.returncode == 1
    assert rejected("qwen-fix/1", "qwen-fix/1") in pushed.stderr.splitlines()
    assert "error: failed to push some refs to" in pushed.stderr
    assert site.emu.branches("octo/hello")["qwen-fix/1"] == before


def test_creating_or_deleting_a_workflow_is_refused_too(site: Site, tmp_path: Path) -> None:
    adding = clone(site, "octo", tmp_path / "adding")
    commit(adding, {".github/workflows/new.yml": "on: push\n"})
    created = git("push", "origin", "HEAD:refs/heads/created", cwd=adding)
    removing = clone(site, "octo", tmp_path / "removing")
    commit(removing, {WORKFLOW: None})
    deleted = git("push", "origin", "HEAD:refs/heads/deleted", cwd=removing)

    new_file = REFUSED.replace(WORKFLOW, ".github/workflows/new.yml")
    assert rejected("HEAD", "created", new_file) in created.stderr.splitlines()
    assert rejected("HEAD", "deleted") in deleted.stderr.splitlines()
    assert set(site.emu.branches("octo/hello")) == {"main"}


def test_the_same_push_is_accepted_with_the_workflows_permission(
    site: Site, tmp_path: Path
) -> None:
    work = clone(site, "trusted", tmp_path / "work")
    sha = commit(work, {WORKFLOW: "on: [push, pull_request]\n"})

    pushed = git("push", "origin", "HEAD:refs/heads/qwen-fix/1", cwd=work)

    assert pushed.returncode == 0, pushed.stderr
    assert site.emu.branches("trusted/hello")["qwen-fix/1"] == sha


def test_pushes_that_leave_workflows_alone_are_accepted(site: Site, tmp_path: Path) -> None:
    work = clone(site, "octo", tmp_path / "work")
    first = commit(work, {"README.md": "hello again\n"})
    created = git("push", "origin", "HEAD:refs/heads/qwen-fix/1", cwd=work)
    second = commit(work, {"src/app.py": "a = 1\n"})
    updated = git("push", "origin", "HEAD:refs/heads/qwen-fix/1", "HEAD:refs/heads/other", cwd=work)

    assert created.returncode == 0, created.stderr
    assert updated.returncode == 0, updated.stderr
    assert site.emu.branches("octo/hello")["qwen-fix/1"] == second != first
    assert site.emu.file_at("octo/hello", "qwen-fix/1", WORKFLOW) == FILES[WORKFLOW]


def test_only_the_refs_changing_workflows_are_refused(site: Site, tmp_path: Path) -> None:
    work = clone(site, "octo", tmp_path / "work")
    plain = commit(work, {"README.md": "plain\n"})
    git("branch", "plain", cwd=work)
    commit(work, {WORKFLOW: "on: pull_request\n"})
    mixed = git("push", "origin", "plain:refs/heads/plain", "HEAD:refs/heads/wf", cwd=work)
    atomic = git(
        "push", "--atomic", "origin", "plain:refs/heads/p2", "HEAD:refs/heads/w2", cwd=work
    )

    assert mixed.returncode == 1
    assert rejected("HEAD", "wf") in mixed.stderr.splitlines()
    assert rejected("plain", "p2", "atomic push failure") in atomic.stderr.splitlines()
    branches = site.emu.branches("octo/hello")
    assert (set(branches), branches["plain"]) == ({"main", "plain"}, plain)


def test_a_new_branch_is_compared_with_the_default_branch(site: Site, tmp_path: Path) -> None:
    stale = clone(site, "octo", tmp_path / "stale")
    site.emu.commit_files("octo/hello", "main", {WORKFLOW: "on: pull_request\n"})
    commit(stale, {"README.md": "behind main\n"})

    behind = git("push", "origin", "HEAD:refs/heads/behind", cwd=stale)
    # GitHub's documented exemption: the same path with the same content on another branch.
    site.emu.commit_files("octo/hello", "old-ci", {WORKFLOW: FILES[WORKFLOW]})
    again = git("push", "origin", "HEAD:refs/heads/behind", cwd=stale)

    assert rejected("HEAD", "behind") in behind.stderr.splitlines()
    assert again.returncode == 0, again.stderr


def test_merging_the_default_branch_brings_its_workflows_along(site: Site, tmp_path: Path) -> None:
    site.emu.commit_files("octo/hello", "qwen-fix/1", {"fix.txt": "1\n"})
    site.emu.commit_files("octo/hello", "main", {WORKFLOW: "on: pull_request\n"})
    work = clone(site, "octo", tmp_path / "work", "qwen-fix/1")
    merged = git("pull", "--quiet", "--no-rebase", "origin", "main", cwd=work)
    assert merged.returncode == 0, merged.stderr

    pushed = git("push", "origin", "qwen-fix/1", cwd=work)

    assert pushed.returncode == 0, pushed.stderr
    assert site.emu.file_at("octo/hello", "qwen-fix/1", WORKFLOW) == "on: pull_request\n"


def test_contents_read_may_fetch_but_not_push(site: Site, tmp_path: Path) -> None:
    work = clone(site, "reader", tmp_path / "work")
    commit(work, {"README.md": "mine\n"})
    site.emu.commit_files("reader/hello", "main", {"README.md": "theirs\n"})

    fetched = git("fetch", "origin", cwd=work)
    pushed = git("push", "origin", "HEAD:refs/heads/qwen-fix/1", cwd=work)

    assert fetched.returncode == 0, fetched.stderr
    assert pushed.returncode == 128
    lines = pushed.stderr.splitlines()
    assert f"remote: Permission to reader/hello.git denied to app-{site.app_id}[bot]." in lines
    assert lines[-1].endswith("The requested URL returned error: 403")
    assert "x-access-token" not in pushed.stderr
    assert set(site.emu.branches("reader/hello")) == {"main"}


def test_no_contents_permission_may_not_even_fetch(site: Site, tmp_path: Path) -> None:
    metadata = site.emu.add_installation(site.app_id, "meta", permissions={"metadata": "read"})
    site.emu.add_repo("meta", "hello", FILES, metadata)
    site.installations["meta"] = metadata

    cloned = git("clone", site.url("meta"), "meta", cwd=tmp_path)

    assert cloned.returncode == 128
    assert f"remote: Permission to meta/hello.git denied to app-{site.app_id}[bot]." in (
        cloned.stderr.splitlines()
    )


def api_commit(site: Site, owner: str, content: str) -> str:
    """A commit on main changing the workflow, made through the git database API, on no ref."""
    client = site.client(owner)  # the namespace below holds its client only weakly
    rest = client.rest.git
    main = site.emu.branches(f"{owner}/hello")["main"]
    base_tree = rest.get_commit(owner, "hello", main).parsed_data.tree.sha
    tree = rest.create_tree(
        owner, "hello", base_tree=base_tree,
        tree=[{"path": WORKFLOW, "mode": "100644", "type": "blob", "content": content}],
    ).parsed_data  # fmt: skip
    made = rest.create_commit(owner, "hello", message="CI", tree=tree.sha, parents=[main])
    return made.parsed_data.sha


def test_the_git_database_api_refuses_the_same_change(site: Site) -> None:
    client = site.client("octo")
    rest = client.rest.git
    site.emu.commit_files("octo/hello", "qwen-fix/1", {"fix.txt": "1\n"})
    before = site.emu.branches("octo/hello")
    sha = api_commit(site, "octo", "on: [push, pull_request]\n")

    with pytest.raises(RequestFailed) as updated:
        rest.update_ref("octo", "hello", "heads/qwen-fix/1", sha=sha, force=True)
    with pytest.raises(RequestFailed) as missing:
        rest.update_ref("octo", "hello", "heads/qwen-fix/2", sha=sha)
    with pytest.raises(RequestFailed) as created:
        rest.create_ref("octo", "hello", ref="refs/heads/qwen-fix/2", sha=sha)

    for refused in (updated, created):
        assert refused.value.response.status_code == 403
        assert refused.value.response.json()["message"] == REFUSED
    # The worker's fallback (422 "Reference does not exist", then create) reaches the 403.
    assert missing.value.response.status_code == 422
    assert site.emu.branches("octo/hello") == before


def test_the_git_database_api_allows_it_with_the_workflows_permission(site: Site) -> None:
    client = site.client("trusted")
    rest = client.rest.git
    sha = api_commit(site, "trusted", "on: [push, pull_request]\n")

    rest.create_ref("trusted", "hello", ref="refs/heads/qwen-fix/1", sha=sha)

    assert site.emu.file_at("trusted/hello", "qwen-fix/1", WORKFLOW) == "on: [push, pull_request]\n"
