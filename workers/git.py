"""Git on the worker side: a mirror cache per repository, checkouts, and pushes with the token.

The installation token reaches git through environment variables (GIT_CONFIG_*), so it is
never written to a config file, never on a command line, and never in a sandbox's checkout.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
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
    """Bare mirrors of remote repositories; a repeat job fetches only the new objects."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def path_for(self, clone_url: str) -> Path:
        digest = hashlib.sha256(clone_url.encode()).hexdigest()[:16]
        name = clone_url.rstrip("/").rsplit("/", 1)[-1].removesuffix(".git")
        return self.root / f"{name}-{digest}.git"

    async def update(self, clone_url: str, auth: GitAuth) -> Path:
        """Create or refresh the mirror of `clone_url`; returns its path."""
        mirror = self.path_for(clone_url)
        lock = _locks.setdefault(mirror, asyncio.Lock())
        async with lock:
            if not (mirror / "HEAD").exists():
                mirror.parent.mkdir(parents=True, exist_ok=True)
                await git("clone", "--mirror", "--quiet", clone_url, str(mirror), auth=auth)
            else:
                await git("fetch", "--prune", "--quiet", "origin", cwd=mirror, auth=auth)
        return mirror


_locks: dict[Path, asyncio.Lock] = {}


async def checkout(mirror: Path, dest: Path, commit: str, *, shared: bool = False) -> None:
    """A work tree of `commit` at `dest`, cloned from the mirror with no remote left behind.

    `shared=False` copies the objects, so a sandbox that owns `dest` cannot touch the mirror.
    """
    link = "--shared" if shared else "--no-hardlinks"
    # A pooled sandbox's workspace is already the sandbox user's, though nothing but our own
    # shell has run in it yet: trust exactly that directory for these commands.
    trust = {"GIT_CONFIG_COUNT": "1", "GIT_CONFIG_KEY_0": "safe.directory",
             "GIT_CONFIG_VALUE_0": str(dest)}  # fmt: skip
    await git("clone", "--quiet", "--no-checkout", link, str(mirror), str(dest), env=trust)
    await git("checkout", "--quiet", "-B", "qwen-fix-work", commit, cwd=dest, env=trust)
    await git("remote", "remove", "origin", cwd=dest, env=trust)


async def resolve(mirror: Path, ref: str) -> str:
    return (await git("rev-parse", "--verify", f"{ref}^{{commit}}", cwd=mirror)).strip()
