"""Spare checkouts: a repository's work tree made ahead of its next job, so that a warm job's
sandbox checkout writes only the files that changed.

Once the history is shared instead of copied (workers/object_share.py), writing the base's files
is most of a job's preparation: a repository of 12,000 files takes seconds. So after each job's
checkout the worker makes the next one in the background, at the default branch's head. The
next job of that repository moves the spare into its workspace by renaming its top entries (the
files stay where they are on disk) and has git bring it to its own base, rewriting only the
files that differ (`object_share.check_out`).

A spare is the worker's alone until a job takes it: made from the mirror's objects, in a
directory next to the mirror that no sandbox mounts. Once taken it is that job's workspace and,
like any workspace, is never reused: the sandbox may have written anything into it.

On disk, beside the mirror `<name>.git`: `<name>.git.spares/ready-<id>` is a finished spare and
`making-<id>` one being made. A job takes a spare by renaming it, which only one job can do, so
workers sharing a data directory never hand out the same spare twice.
"""

from __future__ import annotations

import asyncio
import shutil
import time
import uuid
from pathlib import Path

import structlog

from workers.git import MirrorCache, git
from workers.object_share import WORK_BRANCH, link_objects

log = structlog.get_logger("qwen_fix.spare_checkouts")

KEEP = 4
"""Spares kept on disk across repositories, the most recently made; each is a whole work tree."""
ABANDONED = 3600.0
"""Seconds after which a spare still being made counts as left behind by a worker that died."""
SUFFIX = ".spares"

_making: dict[Path, asyncio.Task[None]] = {}


def spares_of(mirror: Path) -> Path:
    return mirror.with_name(mirror.name + SUFFIX)


def take(mirror: Path, dest: Path) -> bool:
    """Move a ready spare of `mirror`'s repository into `dest` (made if missing; else it must be
    empty); False when there is none, `dest` then as it was. Blocking."""
    for ready in sorted(spares_of(mirror).glob("ready-*"), reverse=True):
        taken = ready.with_name(f"taken-{uuid.uuid4().hex}")
        try:
            ready.rename(taken)
        except FileNotFoundError:  # another job took it first
            continue
        try:
            dest.mkdir(parents=True, exist_ok=True)
            for entry in taken.iterdir():
                entry.rename(dest / entry.name)
        except OSError:
            log.warning("spare_checkout.take_failed", mirror=mirror.name, exc_info=True)
            empty(dest)
            return False
        finally:
            shutil.rmtree(taken, ignore_errors=True)
        return True
    return False


def empty(directory: Path) -> None:
    """Remove everything in `directory`, which stays (a pooled sandbox mounts it). Blocking."""
    for entry in directory.iterdir():
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()


def make_next(mirrors: MirrorCache, mirror: Path, commit: str) -> None:
    """Start making a spare of `mirror` at `commit` in the background, unless this worker is
    making one for it already."""
    if mirror in _making:
        return
    task = asyncio.create_task(_make(mirrors, mirror, commit))
    _making[mirror] = task
    task.add_done_callback(lambda _: _making.pop(mirror, None))


async def made(mirror: Path) -> None:
    """Wait until the spare this worker is making for `mirror`, if any, is ready."""
    task = _making.get(mirror)
    if task is not None:
        await asyncio.shield(task)


async def _make(mirrors: MirrorCache, mirror: Path, commit: str) -> None:
    spares = spares_of(mirror)
    name = f"{time.time_ns()}-{uuid.uuid4().hex[:8]}"
    tree, objects = spares / f"making-{name}", spares / f"objects-{name}"
    try:
        await asyncio.to_thread(_clear_abandoned, spares)
        # A snapshot of the packs of its own, so a repack of the mirror cannot pull one away.
        async with mirrors.lock(mirror):
            await asyncio.to_thread(link_objects, mirror / "objects", objects)
        env = {"GIT_ALTERNATE_OBJECT_DIRECTORIES": str(await asyncio.to_thread(objects.resolve))}
        await git("init", "--quiet", f"--initial-branch={WORK_BRANCH}", str(tree), env=env)
        await git("update-ref", f"refs/heads/{WORK_BRANCH}", commit, cwd=tree, env=env)
        await git("reset", "--quiet", "--hard", cwd=tree, env=env)
        await asyncio.to_thread(tree.rename, spares / f"ready-{name}")
        await asyncio.to_thread(_keep_newest, mirrors.root)
    except Exception:
        # A spare only saves time: the next job checks out in full instead.
        log.warning("spare_checkout.failed", mirror=mirror.name, exc_info=True)
        await asyncio.to_thread(shutil.rmtree, tree, True)
    finally:
        await asyncio.to_thread(shutil.rmtree, objects, True)


def _clear_abandoned(spares: Path) -> None:
    cutoff = time.time() - ABANDONED
    for path in spares.glob("*-*"):
        if not path.name.startswith("ready-") and path.stat().st_mtime < cutoff:
            shutil.rmtree(path, ignore_errors=True)


def _keep_newest(root: Path) -> None:
    """One spare per repository, the newest, and KEEP in all."""
    newest: dict[Path, Path] = {}
    for ready in sorted(root.glob(f"*{SUFFIX}/ready-*"), key=lambda p: p.name, reverse=True):
        if ready.parent in newest:
            shutil.rmtree(ready, ignore_errors=True)
        else:
            newest[ready.parent] = ready
    for stale in sorted(newest.values(), key=lambda p: p.name, reverse=True)[KEEP:]:
        shutil.rmtree(stale, ignore_errors=True)
