"""A sandbox's read-only share of its repository's objects, and the checkout that borrows them.

Cloning the mirror into each workspace with `--no-hardlinks` copied the whole history into
every job: gigabytes and minutes on a large repository. Instead:

- The worker hard-links the mirror's packs (and any loose objects) into a directory of its
  own, the *share*, which the sandbox's container mounts read-only at OBJECTS_MOUNT. A link
  costs the same for a pack of any size. Where a link is impossible (the share on another
  filesystem than the mirror) the file is copied: the old cost, just as safe.
- The workspace gets a git directory of its own: HEAD on `qwen-fix-work` at the base commit,
  the tags and the default branch as refs, the base's files (a warm job's workspace starts as
  a spare checkout, workers/spare_checkouts.py), and one line in `objects/info/alternates`
  naming OBJECTS_MOUNT. git in the sandbox reads the whole history
  through it (`log`, `blame`, `diff` against any commit, `describe`); whatever it writes
  (commits, stashes, repacks) goes into the workspace's own store.

Why the sandbox cannot write to the mirror, though the agent runs any command as its user:
- It reaches the mirror's files only through the share's mount, which is read-only, and the
  kernel refuses every change through a read-only mount whatever the file's owner and mode:
  writing, truncating, chmod, chown, timestamps, extended attributes, and adding, removing or
  renaming names (EROFS). That matters: the worker image runs as uid 1000, the
  sandbox's uid, so the linked files are the sandbox user's own. A writable path to them would
  let it rewrite the mirror's packs and so every later job's checkout and published commit
  (git trusts a pack's index; it does not re-hash what it reads).
- It cannot make the mount writable: remounting needs CAP_SYS_ADMIN, the container has no
  capabilities and `no-new-privileges`, and in a user namespace of its own the mounts it
  inherited stay locked read-only. Nor can it reach the files another way: link(2) and
  rename(2) across mounts fail (EXDEV), reopening through /proc/self/fd keeps the read-only
  mount, and the workspace holds no link to a mirror file.
- The files the sandbox can write (its workspace's `.git`, `objects/info/alternates` among them)
  steer only its own git: the final diff reads the base from the share itself
  (sandbox/fresh_exec.py), and the publish tree borrows from the mirror directly
  (`workers.git.worker_tree`).

Why no other repository's objects are visible: a share holds links to one mirror's files, a
mirror is one repository (`MirrorCache.path_for`, keyed by clone URL) fetched by its branches
only, never `refs/pull/*`, and a share is made for one sandbox and removed with it. A pooled
sandbox's share is mounted empty when the container starts, before its job is known, and
filled when the job takes the slot; a slot serves one job.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from sandbox.docker import OBJECTS_MOUNT
from workers.git import MirrorCache, borrow_objects, git

WORK_BRANCH = "qwen-fix-work"
PACK_FILES = (".pack", ".idx", ".rev", ".bitmap")
"""A pack and the files that index it; `.keep` and temporary files are left out."""
SHARE_MODE = 0o755
OBJECT_MODE = 0o444
HEX = frozenset("0123456789abcdef")


@dataclass(frozen=True, slots=True)
class Share:
    """What a share cost: bytes made visible through hard links, and bytes copied."""

    linked: int
    copied: int


async def share_objects(mirrors: MirrorCache, mirror: Path, share: Path) -> Share:
    """Link every object file of `mirror` into `share` (made if missing), under the mirror's
    lock so that no repack removes a pack halfway."""
    async with mirrors.lock(mirror):
        return await asyncio.to_thread(link_objects, mirror / "objects", share)


async def check_out(
    mirror: Path, share: Path, dest: Path, commit: str, *, refs: Sequence[str]
) -> None:
    """A workspace at `dest` with `commit`'s files, on WORK_BRANCH, whose git borrows objects
    from OBJECTS_MOUNT (where `share` will be seen); the mirror's `refs` (names or prefixes
    such as `refs/tags`) come along, so the agent can `git log main..` or `git describe`.

    `dest` is empty, or holds a spare checkout (workers/spare_checkouts.py): then git rewrites
    only the files that differ between the spare's commit and `commit`."""
    env = {
        "GIT_ALTERNATE_OBJECT_DIRECTORIES": str(await asyncio.to_thread(share.resolve)),
        # A pooled sandbox's workspace is already the sandbox user's, though nothing but our own
        # shell has run in it yet: trust exactly that directory for these commands.
        "GIT_CONFIG_COUNT": "1",
        "GIT_CONFIG_KEY_0": "safe.directory",
        "GIT_CONFIG_VALUE_0": str(dest),
    }
    if not await asyncio.to_thread((dest / ".git").is_dir):
        await git("init", "--quiet", f"--initial-branch={WORK_BRANCH}", str(dest), env=env)
    updates = "--format=update %(refname) %(objectname)"
    copied = await git("for-each-ref", updates, *refs, cwd=mirror)
    work = f"update refs/heads/{WORK_BRANCH} {commit}\n"
    await git("update-ref", "--stdin", cwd=dest, env=env, stdin=(copied + work).encode())
    await git("reset", "--quiet", "--hard", cwd=dest, env=env)
    # Last: the path is the container's; the host has nothing there.
    await asyncio.to_thread(borrow_objects, dest / ".git", OBJECTS_MOUNT)


def link_objects(objects: Path, share: Path) -> Share:
    """Hard-link (else copy) every object file under `objects` into `share`. Blocking."""
    linked = copied = 0
    _make_directory(share)
    made = {share}
    for source in _object_files(objects):
        target = share / source.relative_to(objects)
        if target.parent not in made:
            _make_directory(target.parent)
            made.add(target.parent)
        size = source.stat().st_size
        try:
            os.link(source, target)
            linked += size
        except OSError:  # another filesystem (EXDEV), or fs.protected_hardlinks (EPERM)
            shutil.copyfile(source, target)
            copied += size
        # Readable by the sandbox's uid whatever the worker's umask (git's files are 0444).
        if target.stat().st_mode & 0o777 != OBJECT_MODE:
            target.chmod(OBJECT_MODE)
    return Share(linked, copied)


def _make_directory(path: Path) -> None:
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(SHARE_MODE)


def _object_files(objects: Path) -> Iterator[Path]:
    """The mirror's pack files, then its loose objects (`xx/yyyy…`), if any."""
    pack = objects / "pack"
    if pack.is_dir():
        for path in sorted(pack.iterdir()):
            if path.name.startswith("pack-") and path.suffix in PACK_FILES:
                yield path
    for directory in sorted(objects.iterdir()):
        if len(directory.name) == 2 and set(directory.name) <= HEX and directory.is_dir():
            yield from sorted(directory.iterdir())
