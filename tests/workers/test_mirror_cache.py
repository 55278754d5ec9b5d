"""The mirror cache over real git: only the branches a job needs (and their tags), never GitHub's
`refs/pull/*`; a follow-up's branch fetched when asked for; mirrors made by the old
`clone --mirror` narrowed; and the workspace and publish trees that borrow its objects."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from workers.git import GitAuth, GitError, MirrorCache, git, resolve, worker_tree
from workers.object_share import WORK_BRANCH, check_out, share_objects
from workers.workspace import Checkout, branch_head

AUTH = GitAuth("unused")


def run(*args: str, cwd: Path) -> str:
    done = subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args],
        cwd=cwd, check=True, capture_output=True, text=True,
    )  # fmt: skip
    return done.stdout.strip()


def commit(repo: Path, path: str, text: str) -> str:
    (repo / path).write_text(text)
    run("add", path, cwd=repo)
    run("commit", "-q", "-m", f"write {path}", cwd=repo)
    return run("rev-parse", "HEAD", cwd=repo)


@pytest.fixture
def origin(tmp_path: Path) -> Path:
    """GitHub's copy: main with a tag, a feature branch, a fork's pull request under
    refs/pull/1/head, and a tag only on the pull request's commit."""
    work = tmp_path / "origin-work"
    work.mkdir()
    run("init", "-q", "-b", "main", cwd=work)
    commit(work, "README.md", "hello\n")
    run("tag", "-a", "v1.0", "-m", "release", cwd=work)
    commit(work, "calc.py", "def add(a, b):\n    return a - b\n")
    run("checkout", "-q", "-b", "feature", cwd=work)
    commit(work, "feature.py", "x = 1\n")
    run("checkout", "-q", "--detach", "main", cwd=work)
    fork = commit(work, "fork.py", "print('from a fork')\n")
    run("tag", "fork-tag", cwd=work)
    run("checkout", "-q", "main", cwd=work)
    bare = tmp_path / "origin.git"
    run("clone", "-q", "--bare", str(work), str(bare), cwd=tmp_path)
    run("update-ref", "refs/pull/1/head", fork, cwd=bare)
    run("tag", "-d", "fork-tag", cwd=bare)
    run("tag", "fork-tag", fork, cwd=bare)
    return bare


def refs_of(repo: Path) -> list[str]:
    return run("for-each-ref", "--format=%(refname)", cwd=repo).split()


async def test_the_mirror_holds_the_branches_asked_for_and_no_pull_request_refs(
    origin: Path, tmp_path: Path
) -> None:
    mirrors = MirrorCache(tmp_path / "mirrors")
    url = f"file://{origin}"
    mirror = await mirrors.update(url, AUTH, ["main"])
    assert refs_of(mirror) == ["refs/heads/main", "refs/tags/v1.0"]
    fork = run("rev-parse", "refs/pull/1/head", cwd=origin)
    with pytest.raises(GitError):
        await git("cat-file", "-e", fork, cwd=mirror)
    # What the sandbox's share will link: every fetch is a pack, nothing loose.
    packs = list((mirror / "objects" / "pack").glob("*.pack"))
    loose = [p for p in (mirror / "objects").iterdir() if len(p.name) == 2]
    assert len(packs) == 1 and loose == []


async def test_a_follow_ups_branch_is_fetched_when_asked_for(origin: Path, tmp_path: Path) -> None:
    mirrors = MirrorCache(tmp_path / "mirrors")
    url = f"file://{origin}"
    mirror = await mirrors.update(url, AUTH, ["main"])
    main = await resolve(mirror, "refs/heads/main")
    found = Checkout("o/r", url, "main", main, main, mirror, AUTH, tmp_path / "job")
    assert await branch_head(mirrors, found, "feature") == run("rev-parse", "feature", cwd=origin)
    assert "refs/heads/feature" in refs_of(mirror)
    assert not any(ref.startswith("refs/pull/") for ref in refs_of(mirror))


async def test_many_fetches_are_rolled_up_into_few_packs(origin: Path, tmp_path: Path) -> None:
    mirrors = MirrorCache(tmp_path / "mirrors")
    url = f"file://{origin}"
    work = tmp_path / "pusher"
    run("clone", "-q", str(origin), str(work), cwd=tmp_path)
    for number in range(20):
        commit(work, "counter.txt", f"{number}\n")
        run("push", "-q", "origin", "HEAD:main", cwd=work)
        mirror = await mirrors.update(url, AUTH, ["main"])
    packs = list((mirror / "objects" / "pack").glob("*.pack"))
    assert 1 < len(packs) <= 13
    assert await resolve(mirror, "refs/heads/main") == run("rev-parse", "HEAD", cwd=work)
    await git("fsck", "--no-progress", cwd=mirror)


async def test_a_mirror_made_by_clone_mirror_is_narrowed(origin: Path, tmp_path: Path) -> None:
    mirrors = MirrorCache(tmp_path / "mirrors")
    url = f"file://{origin}"
    old = mirrors.path_for(url)
    run("clone", "-q", "--mirror", url, str(old), cwd=tmp_path)
    assert "refs/pull/1/head" in refs_of(old)
    await mirrors.update(url, AUTH, ["main"])
    assert not any(ref.startswith("refs/pull/") for ref in refs_of(old))
    assert "refs/heads/main" in refs_of(old)
    remote = run("config", "--get-regexp", "^remote\\.origin\\.", cwd=old)
    assert remote == f"remote.origin.url {url}"


async def test_the_sandbox_checkout_borrows_and_the_publish_tree_has_no_files(
    origin: Path, tmp_path: Path
) -> None:
    mirrors = MirrorCache(tmp_path / "mirrors")
    mirror = await mirrors.update(f"file://{origin}", AUTH, ["main"])
    base = await resolve(mirror, "refs/heads/main")
    share, workspace = tmp_path / "share", tmp_path / "workspace"
    shared = await share_objects(mirrors, mirror, share)
    assert shared.copied == 0 and shared.linked > 0
    await check_out(mirror, share, workspace, base, refs=["refs/tags", "refs/heads/main"])
    assert sorted(p.name for p in workspace.iterdir()) == [".git", "README.md", "calc.py"]
    git_dir = workspace / ".git"
    assert (git_dir / "HEAD").read_text() == f"ref: refs/heads/{WORK_BRANCH}\n"
    assert (git_dir / "objects" / "info" / "alternates").read_text() == "/run/qwen-fix-objects\n"
    assert list((git_dir / "objects" / "pack").iterdir()) == []
    # The share's files are the mirror's own (hard links), not copies.
    for path in (mirror / "objects" / "pack").iterdir():
        assert (share / "pack" / path.name).stat().st_ino == path.stat().st_ino
    shown = run(
        "--git-dir", str(git_dir), "for-each-ref", "--format=%(refname)", cwd=tmp_path
    ).split()
    assert shown == ["refs/heads/main", f"refs/heads/{WORK_BRANCH}", "refs/tags/v1.0"]
    tree = tmp_path / "publish"
    await worker_tree(mirror, tree, base)
    assert [p.name for p in tree.iterdir()] == [".git"]
    assert run("rev-parse", "HEAD", cwd=tree) == base
    assert run("diff", "--cached", "--name-only", cwd=tree) == ""
