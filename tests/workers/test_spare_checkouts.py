"""Spare checkouts over real git: a warm job's workspace is the spare made after the last job,
brought to the new base by rewriting only the files that changed; a broken spare costs a full
checkout, never a wrong one."""

from __future__ import annotations

import asyncio
import os
import subprocess
from pathlib import Path

from workers import spare_checkouts
from workers.git import GitAuth, MirrorCache, resolve
from workers.workspace import Checkout, sandbox_checkout

AUTH = GitAuth("unused")


def run(*args: str, cwd: Path, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args],
        cwd=cwd, check=True, capture_output=True, text=True, env={**os.environ, **(env or {})},
    )  # fmt: skip
    return done.stdout.strip()


def make_origin(tmp_path: Path) -> tuple[Path, Path]:
    """GitHub's copy (bare) of a repository of 50 files, and a clone to push new commits from."""
    work = tmp_path / "author"
    (work / "pkg").mkdir(parents=True)
    for number in range(50):
        (work / "pkg" / f"module_{number}.py").write_text(f"value = {number}\n")
    run("init", "-q", "-b", "main", cwd=work)
    run("add", "-A", cwd=work)
    run("commit", "-q", "-m", "first", cwd=work)
    origin = tmp_path / "origin.git"
    run("clone", "-q", "--bare", str(work), str(origin), cwd=tmp_path)
    run("remote", "add", "origin", str(origin), cwd=work)
    return origin, work


async def job(mirrors: MirrorCache, url: str, job_dir: Path) -> Checkout:
    mirror = await mirrors.update(url, AUTH, ["main"])
    base = await resolve(mirror, "refs/heads/main")
    return Checkout("o/r", url, "main", base, base, mirror, AUTH, job_dir)


def in_workspace(found: Checkout, *args: str) -> str:
    """git in a job's workspace, reading objects from its share as the sandbox would."""
    env = {"GIT_ALTERNATE_OBJECT_DIRECTORIES": str(found.sandbox_objects)}
    return run(*args, cwd=found.sandbox_tree, env=env)


async def test_a_warm_job_rewrites_only_the_files_that_changed(tmp_path: Path) -> None:
    origin, author = make_origin(tmp_path)
    mirrors, url = MirrorCache(tmp_path / "mirrors"), f"file://{origin}"
    first = await job(mirrors, url, tmp_path / "job-1")
    await sandbox_checkout(mirrors, first, first.sandbox_tree, first.sandbox_objects)
    await spare_checkouts.made(first.mirror)
    assert len(list(spare_checkouts.spares_of(first.mirror).glob("ready-*"))) == 1
    (ready,) = spare_checkouts.spares_of(first.mirror).glob("ready-*")
    inodes = {p.name: p.stat().st_ino for p in (ready / "pkg").iterdir()}

    (author / "pkg" / "module_7.py").write_text("value = 'seven'\n")
    (author / "pkg" / "module_8.py").unlink()
    (author / "pkg" / "new.py").write_text("new = True\n")
    run("add", "-A", cwd=author)
    run("commit", "-q", "-m", "second", cwd=author)
    run("push", "-q", "origin", "HEAD:main", cwd=author)

    second = await job(mirrors, url, tmp_path / "job-2")
    assert second.base != first.base
    await sandbox_checkout(mirrors, second, second.sandbox_tree, second.sandbox_objects)
    tree = second.sandbox_tree / "pkg"
    # The spare's files became the workspace's: the unchanged ones were not written again.
    assert {p.name: p.stat().st_ino for p in tree.iterdir() if p.name != "module_7.py"} == {
        name: inode for name, inode in inodes.items() if name not in ("module_7.py", "module_8.py")
    } | {"new.py": (tree / "new.py").stat().st_ino}
    assert (tree / "module_7.py").read_text() == "value = 'seven'\n"
    assert in_workspace(second, "rev-parse", "HEAD") == second.base
    assert in_workspace(second, "status", "--porcelain") == ""
    assert in_workspace(second, "log", "--format=%s") == "second\nfirst"
    git_dir = second.sandbox_tree / ".git"
    assert (git_dir / "objects" / "info" / "alternates").read_text() == "/run/qwen-fix-objects\n"
    # The first job's workspace is its own, untouched by the spare made after it.
    assert in_workspace(first, "rev-parse", "HEAD") == first.base
    await spare_checkouts.made(second.mirror)


async def test_a_broken_spare_costs_a_full_checkout_not_a_wrong_one(tmp_path: Path) -> None:
    origin, _ = make_origin(tmp_path)
    mirrors, url = MirrorCache(tmp_path / "mirrors"), f"file://{origin}"
    first = await job(mirrors, url, tmp_path / "job-1")
    await sandbox_checkout(mirrors, first, first.sandbox_tree, first.sandbox_objects)
    await spare_checkouts.made(first.mirror)
    (ready,) = spare_checkouts.spares_of(first.mirror).glob("ready-*")
    await asyncio.to_thread((ready / ".git" / "HEAD").write_text, "garbage\n")
    (ready / "pkg" / "module_1.py").write_text("tampered\n")

    second = await job(mirrors, url, tmp_path / "job-2")
    await sandbox_checkout(mirrors, second, second.sandbox_tree, second.sandbox_objects)
    assert in_workspace(second, "rev-parse", "HEAD") == second.base
    assert in_workspace(second, "status", "--porcelain") == ""
    assert (second.sandbox_tree / "pkg" / "module_1.py").read_text() == "value = 1\n"
    await spare_checkouts.made(second.mirror)


async def test_one_spare_per_repository_and_few_in_all(tmp_path: Path) -> None:
    mirrors = MirrorCache(tmp_path / "mirrors")
    for number in range(spare_checkouts.KEEP + 2):
        origin, _ = make_origin(tmp_path / f"repo-{number}")
        found = await job(mirrors, f"file://{origin}", tmp_path / f"job-{number}")
        for attempt in range(2):
            workspace = found.job_dir / f"workspace-{attempt}"
            await sandbox_checkout(mirrors, found, workspace, found.job_dir / f"objects-{attempt}")
            await spare_checkouts.made(found.mirror)
    spares = list((tmp_path / "mirrors").glob("*.spares/ready-*"))
    assert len(spares) == spare_checkouts.KEEP
    assert len({spare.parent for spare in spares}) == spare_checkouts.KEEP
