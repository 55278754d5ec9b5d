"""Forks, pull requests from forks and protected branches, as GitHub shows them to an app that is
installed on the base repository only: real git clones and pushes, REST through githubkit."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from githubkit import AppInstallationAuthStrategy, GitHub
from githubkit.exception import RequestFailed

from tests.emulator.conftest import APP_IDS
from tests.github_emulator import GitHubEmulator

BASE, FORK = "octo/hello", "alice/hello"
FILES = {"README.md": "hello\n", "src/app.py": "a = 1\n"}
GH006 = "remote: error: GH006: Protected branch update failed for refs/heads/{}."
THROUGH_PULL_REQUEST = "remote: - Changes must be made through a pull request."


@dataclass
class Site:
    """`octo/hello` with the app installed; `alice/hello`, alice's fork of it, without."""

    emu: GitHubEmulator
    app_id: int
    pem: str
    installation_id: int
    clients: dict[int, GitHub[AppInstallationAuthStrategy]] = field(default_factory=dict)

    def url(self, repo: str, installation_id: int | None = None) -> str:
        token = self.emu.installation_token(installation_id or self.installation_id)
        return self.emu.clone_url(repo).replace("http://", f"http://x-access-token:{token}@")

    def client(self, installation_id: int | None = None) -> GitHub[AppInstallationAuthStrategy]:
        """One client per installation, kept: githubkit's namespaces hold theirs only weakly."""
        chosen = installation_id or self.installation_id
        if chosen not in self.clients:
            strategy = AppInstallationAuthStrategy(self.app_id, self.pem, chosen)
            self.clients[chosen] = GitHub(strategy, base_url=self.emu.api_url)
        return self.clients[chosen]


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    with GitHubEmulator(tmp_path / "github") as emu:
        app_id = next(APP_IDS)
        pem = emu.add_app(app_id)
        installation_id = emu.add_installation(app_id, "octo")
        emu.add_repo("octo", "hello", FILES, installation_id)
        emu.set_permission(BASE, "alice", "read")
        yield Site(emu, app_id, pem, installation_id)


def git(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(cwd), "GIT_TERMINAL_PROMPT": "0"}
    env |= {"GIT_CONFIG_NOSYSTEM": "1", "GIT_AUTHOR_NAME": "bot", "GIT_AUTHOR_EMAIL": "b@x"}
    env |= {"GIT_COMMITTER_NAME": "bot", "GIT_COMMITTER_EMAIL": "b@x"}
    return subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True)


def clone(url: str, work: Path) -> Path:
    cloned = git("clone", "--quiet", url, str(work), cwd=work.parent)
    assert cloned.returncode == 0, cloned.stderr
    return work


def commit(work: Path, name: str, text: str) -> str:
    (work / name).write_text(text)
    assert git("commit", "--quiet", "--all", "-m", f"Change {name}", cwd=work).returncode == 0
    return git("rev-parse", "HEAD", cwd=work).stdout.strip()


def remote_lines(stderr: str) -> list[str]:
    # git pads each `remote:` line with spaces to clear the terminal line.
    return [line.rstrip() for line in stderr.splitlines()]


def fork_pull(site: Site, maintainer_can_modify: bool = False) -> tuple[int, str]:
    """Alice's fork with a commit on its `main`, and her pull request from `alice:main`."""
    emu = site.emu
    emu.add_fork(BASE, "alice")
    sha = emu.commit_files(FORK, "main", {"src/app.py": "a = 2\n"}, "Use two")
    number = emu.add_pull(
        BASE, "alice:main", "Use two", None, "alice", maintainer_can_modify=maintainer_can_modify
    )
    return number, sha


# --- forks -------------------------------------------------------------------------------------


def test_a_fork_is_a_copy_of_its_parent_with_parent_and_source(site: Site) -> None:
    emu = site.emu
    emu.commit_files(BASE, "feature", {"NEW.md": "new\n"})
    carol = emu.add_installation(site.app_id, "carol")
    # The app installed on the forks too, so its token may read them.
    emu.add_fork(BASE, "carol", installation_id=carol)
    emu.add_fork("carol/hello", "dave", name="hi", installation_id=carol, default_branch_only=True)
    emu.commit_files(BASE, "main", {"README.md": "later\n"})

    fork = site.client(carol).rest.repos.get("carol", "hello").json()
    deeper = site.client(carol).rest.repos.get("dave", "hi").json()
    base = site.client().rest.repos.get("octo", "hello").json()

    assert (fork["fork"], fork["parent"]["full_name"], fork["source"]["full_name"]) == (
        True,
        BASE,
        BASE,
    )
    assert (deeper["parent"]["full_name"], deeper["source"]["full_name"]) == ("carol/hello", BASE)
    assert (base["fork"], base["forks_count"], "parent" in base) == (False, 1, False)
    assert set(emu.branches("carol/hello")) == {"main", "feature"}
    assert set(emu.branches("dave/hi")) == {"main"}
    assert emu.file_at("carol/hello", "main", "README.md") == "hello\n"


def test_the_base_installation_can_neither_read_nor_push_a_private_fork(
    site: Site, tmp_path: Path
) -> None:
    site.emu.add_fork(BASE, "alice")
    work = clone(site.url(BASE), tmp_path / "work")
    commit(work, "README.md", "mine\n")

    cloned = git("clone", site.url(FORK), "fork", cwd=tmp_path)
    pushed = git("push", site.url(FORK), "HEAD:refs/heads/main", cwd=work)
    with pytest.raises(RequestFailed) as read:
        site.client().rest.repos.get("alice", "hello")

    for refused in (cloned, pushed):
        assert refused.returncode == 128
        assert "remote: Repository not found." in refused.stderr.splitlines()
    assert read.value.response.status_code == 404
    assert site.emu.file_at(FORK, "main", "README.md") == "hello\n"


def test_a_public_fork_may_be_fetched_but_not_pushed(site: Site, tmp_path: Path) -> None:
    other = site.emu.add_installation(site.app_id, "someone")
    site.emu.add_repo("someone", "open", FILES, other, private=False)
    site.emu.add_fork("someone/open", "alice")

    work = clone(site.url("alice/open"), tmp_path / "work")
    commit(work, "README.md", "mine\n")
    pushed = git("push", "origin", "HEAD:refs/heads/main", cwd=work)

    assert pushed.returncode == 128
    denied = f"remote: Permission to alice/open.git denied to app-{site.app_id}[bot]."
    assert denied in pushed.stderr.splitlines()
    assert site.emu.file_at("alice/open", "main", "README.md") == "hello\n"


# --- pull requests from forks ------------------------------------------------------------------


def test_a_fork_pull_shows_the_fork_as_its_head(site: Site) -> None:
    number, sha = fork_pull(site, maintainer_can_modify=True)
    rest = site.client().rest.pulls

    pull = rest.get("octo", "hello", number).parsed_data
    listed = rest.list("octo", "hello", head="alice:main").parsed_data
    same_name = rest.list("octo", "hello", head="octo:main").parsed_data

    assert pull.head.repo and (pull.head.repo.full_name, pull.head.repo.fork) == (FORK, True)
    assert (pull.head.label, pull.head.ref, pull.head.sha) == ("alice:main", "main", sha)
    assert pull.head.user and pull.head.user.login == "alice"
    assert (pull.base.repo.full_name, pull.base.label) == (BASE, "octo:main")
    assert pull.maintainer_can_modify is True
    assert [p.number for p in listed] == [number] and same_name == []
    assert listed[0].head.repo and listed[0].head.repo.full_name == FORK


def test_refs_pull_head_follows_the_fork_branch(site: Site, tmp_path: Path) -> None:
    number, first = fork_pull(site)
    work = clone(site.url(BASE), tmp_path / "work")
    advertised = git("ls-remote", "origin", f"refs/pull/{number}/head", cwd=work).stdout

    second = site.emu.commit_files(FORK, "main", {"src/app.py": "a = 3\n"}, "Use three")
    fetched = git("fetch", "origin", f"refs/pull/{number}/head", cwd=work)
    head = site.client().rest.pulls.get("octo", "hello", number).parsed_data.head

    assert advertised.split() == [first, f"refs/pull/{number}/head"]
    assert fetched.returncode == 0, fetched.stderr
    assert git("rev-parse", "FETCH_HEAD", cwd=work).stdout.strip() == second == head.sha
    assert git("show", "FETCH_HEAD:src/app.py", cwd=work).stdout == "a = 3\n"


def test_refs_pull_head_follows_pushes_to_a_branch_of_the_repository(
    site: Site, tmp_path: Path
) -> None:
    site.emu.commit_files(BASE, "qwen-fix/1", {"fix.txt": "1\n"})
    number = site.emu.add_pull(BASE, "qwen-fix/1", "Fix", None, "alice")
    work = clone(site.url(BASE), tmp_path / "work")
    git("checkout", "--quiet", "qwen-fix/1", cwd=work)
    sha = commit(work, "fix.txt", "2\n")

    pushed = git("push", "origin", "qwen-fix/1", cwd=work)
    listed = git("ls-remote", "origin", f"refs/pull/{number}/head", cwd=work).stdout

    assert pushed.returncode == 0, pushed.stderr
    assert listed.split() == [sha, f"refs/pull/{number}/head"]


def test_nobody_may_push_to_refs_pull(site: Site, tmp_path: Path) -> None:
    number, sha = fork_pull(site)
    work = clone(site.url(BASE), tmp_path / "work")
    commit(work, "README.md", "sneaky\n")

    pushed = git("push", "origin", f"HEAD:refs/pull/{number}/head", cwd=work)

    assert pushed.returncode == 1
    rejected = f" ! [remote rejected] HEAD -> refs/pull/{number}/head (deny updating a hidden ref)"
    assert rejected in pushed.stderr.splitlines()
    assert site.client().rest.pulls.get("octo", "hello", number).parsed_data.head.sha == sha


def test_webhooks_of_a_fork_pull_carry_the_fork_head(site: Site) -> None:
    number, sha = fork_pull(site)
    emu = site.emu
    comment = emu.add_review_comment(BASE, number, "octo", "src/app.py", 1, "Why two?")
    review = emu.add_review(BASE, number, "octo", "Hmm", state="CHANGES_REQUESTED")

    payloads = [
        emu.webhook("pull_request", "opened", repo=BASE, sender="alice", pull=number),
        emu.webhook("pull_request_review", "submitted", repo=BASE, sender="octo", review=review),
        emu.webhook(
            "pull_request_review_comment", "created", repo=BASE, sender="octo", comment=comment
        ),
    ]

    for payload in payloads:
        head = payload["pull_request"]["head"]
        assert (head["label"], head["ref"], head["sha"]) == ("alice:main", "main", sha)
        assert (head["repo"]["full_name"], head["repo"]["fork"]) == (FORK, True)
        assert payload["pull_request"]["base"]["repo"]["full_name"] == BASE
        assert payload["repository"]["full_name"] == BASE
    assert payloads[2]["comment"]["commit_id"] == sha
    with pytest.raises(KeyError, match="not installed"):
        emu.webhook("issues", "opened", repo=FORK, sender="alice", issue=1)


def test_a_pull_from_a_deleted_fork_keeps_its_head_without_a_repo(
    site: Site, tmp_path: Path
) -> None:
    number, sha = fork_pull(site)

    site.emu.delete_repo(FORK)
    pull = site.client().rest.pulls.get("octo", "hello", number).parsed_data
    listed = site.client().rest.pulls.list("octo", "hello").parsed_data
    payload = site.emu.webhook("pull_request", "closed", repo=BASE, sender="octo", pull=number)
    work = clone(site.url(BASE), tmp_path / "work")

    assert (pull.head.repo, pull.head.ref, pull.head.sha) == (None, "main", sha)
    assert listed[0].head.repo is None
    assert payload["pull_request"]["head"]["repo"] is None
    assert git("fetch", "origin", f"refs/pull/{number}/head", cwd=work).returncode == 0
    assert site.client().rest.repos.get("octo", "hello").parsed_data.forks_count == 0


# --- protected branches ------------------------------------------------------------------------


def test_get_branch_tells_a_protected_branch(site: Site) -> None:
    repos = site.client().rest.repos
    before = repos.get_branch("octo", "hello", "main").parsed_data

    site.emu.protect_branch(BASE, "main")
    after = repos.get_branch("octo", "hello", "main").parsed_data

    assert (before.protected, before.protection.enabled) == (False, False)
    assert (after.protected, after.protection.enabled) == (True, True)
    with pytest.raises(KeyError):
        site.emu.protect_branch(BASE, "nope")


def test_a_push_to_a_protected_branch_is_refused_with_gh006(site: Site, tmp_path: Path) -> None:
    site.emu.protect_branch(BASE, "main")
    before = site.emu.branches(BASE)["main"]
    work = clone(site.url(BASE), tmp_path / "work")
    sha = commit(work, "README.md", "direct\n")

    pushed = git("push", "origin", "main", "HEAD:refs/heads/qwen-fix/1", cwd=work)

    assert pushed.returncode == 1
    lines = remote_lines(pushed.stderr)
    at = lines.index(GH006.format("main"))
    assert lines[at + 1 : at + 3] == ["remote:", THROUGH_PULL_REQUEST]
    assert " ! [remote rejected] main -> main (protected branch hook declined)" in lines
    # Other refs of the same push go through, as the workflow guard lets them.
    assert site.emu.branches(BASE) == {"main": before, "qwen-fix/1": sha}


def test_force_pushes_and_deletions_of_a_protected_branch_are_refused(
    site: Site, tmp_path: Path
) -> None:
    site.emu.commit_files(BASE, "release", {"NOTES.md": "1.0\n"})
    site.emu.protect_branch(BASE, "release")
    before = site.emu.branches(BASE)["release"]
    work = clone(site.url(BASE), tmp_path / "work")
    commit(work, "README.md", "rewritten\n")

    forced = git("push", "--force", "origin", "HEAD:refs/heads/release", cwd=work)
    deleted = git("push", "origin", ":refs/heads/release", cwd=work)

    forced_lines, deleted_lines = remote_lines(forced.stderr), remote_lines(deleted.stderr)
    at = forced_lines.index(GH006.format("release"))
    assert forced_lines[at + 1 : at + 5] == [
        "remote:",
        THROUGH_PULL_REQUEST,
        "remote:",
        "remote: - Cannot force-push to this branch",
    ]
    assert "remote: - Cannot delete this protected branch" in deleted_lines
    assert " ! [remote rejected] release (protected branch hook declined)" in deleted_lines
    assert site.emu.branches(BASE)["release"] == before


def test_an_atomic_push_fails_whole_on_a_protected_branch(site: Site, tmp_path: Path) -> None:
    site.emu.protect_branch(BASE, "main")
    work = clone(site.url(BASE), tmp_path / "work")
    commit(work, "README.md", "direct\n")

    pushed = git("push", "--atomic", "origin", "main", "HEAD:refs/heads/other", cwd=work)

    lines = remote_lines(pushed.stderr)
    assert " ! [remote rejected] HEAD -> other (atomic push failure)" in lines
    assert set(site.emu.branches(BASE)) == {"main"}


def test_the_git_refs_api_refuses_to_move_a_protected_branch(site: Site) -> None:
    emu, rest = site.emu, site.client().rest.git
    first = emu.branches(BASE)["main"]
    second = emu.commit_files(BASE, "main", {"README.md": "two\n"})
    emu.commit_files(BASE, "scratch", {"x.md": "x\n"})
    emu.protect_branch(BASE, "main")

    with pytest.raises(RequestFailed) as back:
        rest.update_ref("octo", "hello", "heads/main", sha=first, force=True)
    with pytest.raises(RequestFailed) as ahead:
        rest.update_ref("octo", "hello", "heads/main", sha=emu.branches(BASE)["scratch"])
    moved = rest.update_ref("octo", "hello", "heads/scratch", sha=second, force=True)

    assert back.value.response.status_code == ahead.value.response.status_code == 422
    assert back.value.response.json()["message"] == (
        "Changes must be made through a pull request. Cannot force-push to this branch"
    )
    assert ahead.value.response.json()["message"] == "Changes must be made through a pull request."
    assert moved.parsed_data.object_.sha == second
    assert emu.branches(BASE)["main"] == second
