"""The sandbox borrows its repository's objects from the worker's mirror and can change none of
them: a script playing the compromised agent tries every way in from inside the container.

The mirror's object files are given to uid 1000 first, as in production, where the worker runs
as the sandbox's uid: so only the read-only mount stands between the agent and files it owns.
Both ways a sandbox gets its checkout are attacked: started over it, and a pooled sandbox that
was started before the job's repository was known.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import docker
import pytest

from sandbox.config import SandboxConfig
from sandbox.docker import OBJECTS_MOUNT, DockerSandbox
from sandbox.pool import SandboxPool
from workers.git import GitAuth, MirrorCache, git, resolve
from workers.workspace import Checkout, sandbox_checkout

pytestmark = pytest.mark.docker

LABELS = {"qwen-fix.test": "pytest"}
SANDBOX_UID = 1000
ATTACK = r"""
share=/run/qwen-fix-objects
pack=$(ls "$share"/pack/*.pack | head -n 1)
idx=${pack%.pack}.idx
attempt() {
  if out=$("$@" 2>&1); then echo "ALLOWED: $*"; else echo "refused: $* -- $out"; fi
}
py() { python3 -c "import os, sys; p, i = sys.argv[1], sys.argv[2]; $1" "$pack" "$idx"; }
attempt chmod u+w "$pack"
attempt chmod 0666 "$idx"
attempt sh -c "printf x >>'$pack'"
attempt truncate -s 0 "$idx"
attempt rm -f "$pack"
attempt mv "$pack" "$pack.moved"
attempt touch "$pack"
attempt touch -d 2000-01-01 "$idx"
attempt ln "$pack" /workspace/stolen.pack
attempt ln "$pack" /tmp/stolen.pack
attempt mkdir "$share/planted"
attempt sh -c "echo x >'$share/pack/pack-planted.idx'"
attempt sh -c "echo /tmp >'$share/info-alternates'"
attempt py "os.open(p, os.O_RDWR)"
attempt py "fd = os.open(p, os.O_RDONLY); os.open(f'/proc/self/fd/{fd}', os.O_WRONLY)"
attempt py "fd = os.open(p, os.O_RDONLY); os.fchmod(fd, 0o666)"
attempt py "os.setxattr(p, 'user.planted', b'1')"
attempt py "os.utime(i, (0, 0))"
attempt mount -o remount,rw "$share"
attempt unshare -Urm sh -c "mount -o remount,rw,bind '$share' && printf x >>'$pack'"
attempt unshare -Urm sh -c "mount --bind /tmp '$share' && touch '$share/planted'"
# Through git: commit, repack, prune, then cut the workspace off the share.
git -c user.name=x -c user.email=x@example.com commit -qam wip
git repack -a -d -q && git gc -q --prune=now && git prune
printf '/tmp/forged\n' >.git/objects/info/alternates
rm -rf .git/objects/pack/* .git/objects/??
echo attack done
"""


def run(*args: str, cwd: Path) -> str:
    done = subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args],
        cwd=cwd, check=True, capture_output=True, text=True,
    )  # fmt: skip
    return done.stdout.strip()


def make_origin(root: Path, marker: str) -> Path:
    work = root / f"{marker}-work"
    work.mkdir(parents=True)
    run("init", "-q", "-b", "main", cwd=work)
    (work / "README.md").write_text(f"{marker}\n")
    run("add", "-A", cwd=work)
    run("commit", "-q", "-m", "first", cwd=work)
    (work / "calc.py").write_text("def add(a, b):\n    return a - b\n")
    run("add", "-A", cwd=work)
    run("commit", "-q", "-m", f"second of {marker}", cwd=work)
    bare = root / f"{marker}.git"
    run("clone", "-q", "--bare", str(work), str(bare), cwd=root)
    return bare


def fingerprint(root: Path) -> dict[str, tuple[str, int, int, int]]:
    """Every file of a directory tree: content hash, mode, owner, modification time."""
    found = {}
    for directory, _, files in os.walk(root):
        for name in files:
            path = Path(directory, name)
            status = path.lstat()
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
            found[str(path.relative_to(root))] = (
                digest, status.st_mode, status.st_uid, status.st_mtime_ns
            )  # fmt: skip
    return found


def give_to_sandbox_uid(root: Path) -> None:
    for directory, _, files in os.walk(root):
        for entry in (directory, *(os.path.join(directory, name) for name in files)):
            os.lchown(entry, SANDBOX_UID, SANDBOX_UID)


@pytest.fixture
def config(sandbox_image: str) -> SandboxConfig:
    return SandboxConfig(image=sandbox_image, memory="512m", cpus=1.0, pids=128, lifetime=300)


@pytest.fixture
async def mirrors(tmp_path: Path) -> MirrorCache:
    return MirrorCache(tmp_path / "mirrors")


async def job_of(mirrors: MirrorCache, origin: Path, job_dir: Path) -> Checkout:
    url = f"file://{origin}"
    mirror = await mirrors.update(url, GitAuth("unused"), ["main"])
    base = await resolve(mirror, "refs/heads/main")
    await asyncio.to_thread(job_dir.mkdir, parents=True)
    return Checkout("o/r", url, "main", base, base, mirror, GitAuth("unused"), job_dir)


class Started:
    """A sandbox over a job's checkout, fresh or pooled, and how to end it."""

    def __init__(self, sandbox: DockerSandbox, pool: SandboxPool | None) -> None:
        self.sandbox, self.pool = sandbox, pool

    async def close(self) -> None:
        await self.sandbox.close()
        if self.pool is not None:
            await self.pool.close()


async def start(
    how: str, client: docker.DockerClient, config: SandboxConfig, mirrors: MirrorCache,
    found: Checkout,
) -> Started:  # fmt: skip
    if how == "fresh":
        await sandbox_checkout(mirrors, found, found.sandbox_tree, found.sandbox_objects)
        box = await DockerSandbox.start(
            client, config, found.sandbox_tree, labels=LABELS, objects_dir=found.sandbox_objects
        )
        return Started(box, None)
    pool = SandboxPool(client, config, size=0, root=found.job_dir / "pool", labels=LABELS)
    slot = await pool.take()
    # Started before the job was known: its share is mounted, and empty.
    empty = await slot.sandbox.run(f"ls -A {OBJECTS_MOUNT}")
    assert empty.ok and empty.output.strip() == "", empty.output
    await sandbox_checkout(mirrors, found, slot.workspace_dir, slot.objects_dir)
    return Started(await slot.ready("qwen-fix-test-object-share"), pool)


@pytest.fixture(params=["fresh", "pooled"])
async def attacked(
    request: pytest.FixtureRequest, docker_client: docker.DockerClient, config: SandboxConfig,
    mirrors: MirrorCache, tmp_path: Path,
) -> AsyncIterator[tuple[DockerSandbox, Checkout]]:  # fmt: skip
    found = await job_of(mirrors, make_origin(tmp_path, "calc"), tmp_path / "job")
    give_to_sandbox_uid(found.mirror / "objects")
    started = await start(request.param, docker_client, config, mirrors, found)
    try:
        yield started.sandbox, found
    finally:
        await started.close()


async def test_the_agent_cannot_change_the_mirrors_objects(
    attacked: tuple[DockerSandbox, Checkout],
) -> None:
    sandbox, found = attacked
    before = fingerprint(found.mirror)
    listing = await sandbox.run(f"ls -l {OBJECTS_MOUNT}/pack && git log --format=%s")
    # The sandbox's own uid owns the linked files, and its git reads the history through them.
    assert f" {SANDBOX_UID} " in listing.output or " sandbox " in listing.output, listing.output
    assert "second of calc\nfirst" in listing.output
    await sandbox.write_file("calc.py", b"def add(a, b):\n    return a + b\n")
    result = await sandbox.run(ATTACK, timeout=120)
    assert "attack done" in result.output, result.output
    assert "ALLOWED" not in result.output, result.output
    # The owner's chmod fails on the mount itself, not on the file's permissions.
    chmod = next(line for line in result.output.splitlines() if "chmod u+w" in line)
    assert "Read-only file system" in chmod, chmod
    assert fingerprint(found.mirror) == before
    await git("fsck", "--strict", "--no-progress", cwd=found.mirror)
    # The final diff reads the base from the share, so cutting the workspace's git off it
    # changes nothing: the change is exactly the agent's edit.
    patch = await sandbox.final_diff()
    assert "-    return a - b\n+    return a + b\n" in patch
    assert patch.count("diff --git") == 1, patch


async def test_no_other_repositorys_objects_are_visible(
    docker_client: docker.DockerClient, config: SandboxConfig, mirrors: MirrorCache,
    tmp_path: Path,
) -> None:  # fmt: skip
    found = await job_of(mirrors, make_origin(tmp_path, "ours"), tmp_path / "job")
    other = await job_of(mirrors, make_origin(tmp_path, "theirs"), tmp_path / "other-job")
    assert other.mirror.parent == found.mirror.parent  # one worker, one cache
    started = await start("pooled", docker_client, config, mirrors, found)
    try:
        packs = sorted(p.name for p in (other.mirror / "objects" / "pack").iterdir())
        ours = sorted(p.name for p in (found.mirror / "objects" / "pack").iterdir())
        script = (
            f"ls {OBJECTS_MOUNT}/pack; git cat-file -e {other.base} && echo READABLE; "
            f"find / -name '{packs[0]}' 2>/dev/null; true"
        )
        result = await started.sandbox.run(script, timeout=120)
        assert result.output.split() == ours, result.output
    finally:
        await started.close()
