"""A job's working copies: the mirror fetch, the sandbox's checkout and the worker's own tree."""

from __future__ import annotations

import asyncio
import shutil
from dataclasses import dataclass
from pathlib import Path

from githubkit import GitHub

from bot.github import GitHubApp
from workers.git import GitAuth, GitError, MirrorCache, git, resolve
from workers.test_command import detect_test_command

REPO_CONFIG_PATH = ".github/qwen-fix.yml"


@dataclass(frozen=True, slots=True)
class Checkout:
    """One repository at one commit, checked out for a job."""

    repository: str
    clone_url: str
    default_branch: str
    base: str
    """The commit the sandbox starts from."""
    mirror: Path
    auth: GitAuth
    job_dir: Path

    @property
    def sandbox_tree(self) -> Path:
        """The sandbox's copy: it owns it, so the worker never runs git in it."""
        return self.job_dir / "workspace"

    @property
    def publish_tree(self) -> Path:
        return self.job_dir / "publish"


async def prepare(
    github: GitHubApp,
    client: GitHub,
    mirrors: MirrorCache,
    installation_id: int,
    repository: str,
    job_dir: Path,
    *,
    ref: str | None = None,
) -> Checkout:
    """Fetch the repository into its mirror and resolve `ref` (default branch by default)
    to the base commit; the sandbox's checkout is made when its sandbox starts."""
    owner, name = repository.split("/", 1)
    repo = (await client.rest.repos.async_get(owner, name)).parsed_data
    auth = GitAuth(await github.installation_token(installation_id))
    mirror = await mirrors.update(repo.clone_url, auth)
    base = await resolve(mirror, ref or f"refs/heads/{repo.default_branch}")
    await asyncio.to_thread(_fresh_dir, job_dir)
    return Checkout(repository, repo.clone_url, repo.default_branch, base, mirror, auth, job_dir)


async def read_at_base(found: Checkout, path: str) -> str | None:
    """A file of the base commit, read from the mirror (not from the sandbox's tree)."""
    try:
        return await git("show", f"{found.base}:{path}", cwd=found.mirror)
    except GitError:
        return None


async def guess_test_command(found: Checkout) -> str | None:
    files = (await git("ls-tree", "-r", "--name-only", found.base, cwd=found.mirror)).splitlines()
    texts: dict[str, str] = {}

    async def load(path: str) -> None:
        texts[path] = await read_at_base(found, path) or ""

    for path in ("Makefile", "package.json", "pyproject.toml"):
        if path in files:
            await load(path)
    return detect_test_command(files, lambda path: texts.get(path, ""))


def _fresh_dir(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)


def clean_up(found: Checkout) -> None:
    shutil.rmtree(found.job_dir, ignore_errors=True)
