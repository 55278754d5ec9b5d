"""Git on the worker side: a mirror cache per repository, checkouts, and pushes with the token.

The installation token reaches git through environment variables (GIT_CONFIG_*), so it is
never written to a config file, never on a command line, and never in a sandbox's checkout.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

GIT_TIMEOUT = 600.0


class GitError(RuntimeError):
    """A git command failed; the message holds its stderr, with any token scrubbed."""


@dataclass(frozen=True, slots=True)
class GitAuth:
    """Credentials for one remote, handed to git as an HTTP header through its environment."""

    token: str

    def env(self) -> dict[str, str]:
        basic = base64.b64encode(f"x-access-token:{self.token}".encode()).decode()
        return {
            "GIT_CONFIG_COUNT": "1",
            "GIT_CONFIG_KEY_0": "http.extraHeader",
            "GIT_CONFIG_VALUE_0": f"Authorization: Basic {basic}",
        }

    def scrub(self, text: str) -> str:
        basic = base64.b64encode(f"x-access-token:{self.token}".encode()).decode()
        return text.replace(self.token, "***").replace(basic, "***")


def _base_env() -> dict[str, str]:
    keep = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "SSL_CERT_FILE", "GIT_SSL_CAINFO")
    env = {k: v for k, v in os.environ.items() if k in keep}
    env.update(
        GIT_TERMINAL_PROMPT="0",
        GIT_CONFIG_NOSYSTEM="1",
        GIT_AUTHOR_NAME="qwen-fix",
        GIT_AUTHOR_EMAIL="qwen-fix@localhost",
        GIT_COMMITTER_NAME="qwen-fix",
        GIT_COMMITTER_EMAIL="qwen-fix@localhost",
    )
    return env


async def git(
    *args: str,
    cwd: Path | None = None,
    auth: GitAuth | None = None,
    env: dict[str, str] | None = None,
    stdin: bytes | None = None,
) -> str:
    """Run one git command; return stdout, raise GitError with stderr on failure."""
    out = await git_bytes(*args, cwd=cwd, auth=auth, env=env, stdin=stdin)
    return out.decode(errors="replace")


async def git_bytes(
    *args: str,
    cwd: Path | None = None,
    auth: GitAuth | None = None,
    env: dict[str, str] | None = None,
    stdin: bytes | None = None,
) -> bytes:
    """`git` with stdout as bytes: for blobs, which need not be text."""
    full_env = _base_env() | (auth.env() if auth else {}) | (env or {})
    process = await asyncio.create_subprocess_exec(
        "git",
        *args,
        cwd=cwd,
        env=full_env,
        stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(stdin), GIT_TIMEOUT)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise GitError(f"git {args[0]} took longer than {GIT_TIMEOUT:.0f} s") from None
    if process.returncode != 0:
        message = err.decode(errors="replace").strip()
        if auth:
            message = auth.scrub(message)
        raise GitError(f"git {args[0]} failed ({process.returncode}): {message}")
    return out


class MirrorCache:
    """Bare copies of remote repositories, one per clone URL, holding only the branches jobs asked
    for (with the tags in their history): never `refs/pull/*`, which `clone --mirror` fetches
    with every fork's commits. A repeat job fetches only the new objects.

    Each fetch keeps what it received as a pack of its own (never unpacked into loose objects),
    so a sandbox's share of the objects (workers/object_share.py) is a few hard links; when the
    packs grow many, the small ones are rolled together (geometric repacking, which leaves the
    big pack of the history alone), and git's own automatic gc, which would rewrite everything
    in the middle of a job, is off.
    """

    def __init__(self, root: Path) -> None:
        self.root = root

    def path_for(self, clone_url: str) -> Path:
        digest = hashlib.sha256(clone_url.encode()).hexdigest()[:16]
        name = clone_url.rstrip("/").rsplit("/", 1)[-1].removesuffix(".git")
        return self.root / f"{name}-{digest}.git"

    def lock(self, mirror: Path) -> asyncio.Lock:
        """Held while the mirror's packs change or are being linked elsewhere."""
        return _locks.setdefault(mirror, asyncio.Lock())

    async def update(self, clone_url: str, auth: GitAuth, branches: Sequence[str]) -> Path:
        """Create or refresh the mirror of `clone_url` with `branches`; returns its path."""
        mirror = self.path_for(clone_url)
        async with self.lock(mirror):
            if not (mirror / "HEAD").exists():
                await _create_mirror(mirror, clone_url)
            elif await _is_full_mirror(mirror):
                await _narrow_full_mirror(mirror)
            refspecs = [f"+refs/heads/{branch}:refs/heads/{branch}" for branch in branches]
            await git("fetch", "--quiet", "origin", *refspecs, cwd=mirror, auth=auth)
            await _roll_up_small_packs(mirror)
        return mirror


_locks: dict[Path, asyncio.Lock] = {}
MIRROR_CONFIG = {
    "gc.auto": "0",
    "maintenance.auto": "false",
    # Every fetch stays one pack: a share links it instead of copying thousands of loose objects.
    "fetch.unpackLimit": "1",
    "core.logAllRefUpdates": "false",
}
PACKS_BEFORE_ROLL_UP = 12


async def _create_mirror(mirror: Path, clone_url: str) -> None:
    mirror.parent.mkdir(parents=True, exist_ok=True)
    await git("init", "--quiet", "--bare", str(mirror))
    await git("config", "remote.origin.url", clone_url, cwd=mirror)
    await _configure(mirror)


async def _configure(mirror: Path) -> None:
    for key, value in MIRROR_CONFIG.items():
        await git("config", key, value, cwd=mirror)


async def _is_full_mirror(mirror: Path) -> bool:
    try:
        return (await git("config", "--get", "remote.origin.mirror", cwd=mirror)).strip() == "true"
    except GitError:  # not set
        return False


async def _narrow_full_mirror(mirror: Path) -> None:
    """A mirror made by `clone --mirror` (before this cache fetched only branches): drop its
    refs other than branches and tags, `refs/pull/*` above all, and the all-refs refspec."""
    await git("config", "--unset", "remote.origin.mirror", cwd=mirror)
    await git("config", "--unset-all", "remote.origin.fetch", cwd=mirror)
    await _configure(mirror)
    listing = await git("for-each-ref", "--format=%(refname)", cwd=mirror)
    others = [ref for ref in listing.split() if not ref.startswith(("refs/heads/", "refs/tags/"))]
    commands = "".join(f"delete {ref}\n" for ref in others)
    await git("update-ref", "--stdin", cwd=mirror, stdin=commands.encode())


async def _roll_up_small_packs(mirror: Path) -> None:
    packs = list((mirror / "objects" / "pack").glob("pack-*.pack"))
    if len(packs) > PACKS_BEFORE_ROLL_UP:
        await git("repack", "-d", "-q", "--geometric=2", cwd=mirror)


async def worker_tree(mirror: Path, dest: Path, commit: str) -> None:
    """A tree at `dest` for the worker's own git work on `commit`: HEAD and the index at
    `commit`, no files written, every object of the mirror borrowed through git's alternates.

    Only worker-side git ever runs here (staging a patch into the index, committing, pushing),
    so it may point at the mirror itself; what it writes lands in its own object store.
    """
    await git("init", "--quiet", "--template=", str(dest))  # no sample hooks to copy
    await asyncio.to_thread(borrow_objects, dest / ".git", mirror / "objects")
    await git("update-ref", "HEAD", commit, cwd=dest)
    await git("read-tree", "HEAD", cwd=dest)


def borrow_objects(git_dir: Path, objects: Path | str) -> None:
    """Make the repository at `git_dir` read objects from `objects` too (its alternates): a
    host directory, or (a string) a path as the container that will run git there sees it."""
    alternates = git_dir / "objects" / "info" / "alternates"
    alternates.parent.mkdir(parents=True, exist_ok=True)
    target = objects.resolve() if isinstance(objects, Path) else objects
    alternates.write_text(f"{target}\n")


async def resolve(mirror: Path, ref: str) -> str:
    return (await git("rev-parse", "--verify", f"{ref}^{{commit}}", cwd=mirror)).strip()
