"""A job's working copies: the mirror fetch, the sandbox's checkout and the worker's own tree.

Two commits matter to a job: `base`, where the sandbox starts (the default branch for an issue,
the pull request's head for a follow-up), and `trusted`, the default branch, where the app's
configuration and the repository's guidance are read. A follow-up's head is a branch the agent
itself wrote, steered by text from strangers: its copies of those files are data, never trusted.
"""

from __future__ import annotations

import asyncio
import shutil
from dataclasses import dataclass
from pathlib import Path

from githubkit import GitHub

from bot.github import GitHubApp
from bot.repo_config import CONFIG_PATH
from workers.agent.prompts import GUIDANCE_FILES, GUIDANCE_LIMIT
from workers.git import GitAuth, GitError, MirrorCache, git, resolve
from workers.test_command import READ_FOR_DETECTION, TestCommand, candidate_commands

REPO_CONFIG_PATH = CONFIG_PATH
REGULAR_FILES = ("100644", "100755")


@dataclass(frozen=True, slots=True)
class Checkout:
    """One repository at one commit, checked out for a job."""

    repository: str
    clone_url: str
    default_branch: str
    base: str
    """The commit the sandbox starts from."""
    trusted: str
    """The default branch's commit: where config, guidance and test detection are read."""
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
    trusted = await resolve(mirror, f"refs/heads/{repo.default_branch}")
    base = await resolve(mirror, ref) if ref else trusted
    await asyncio.to_thread(_fresh_dir, job_dir)
    return Checkout(
        repository, repo.clone_url, repo.default_branch, base, trusted, mirror, auth, job_dir
    )


async def read_trusted(found: Checkout, path: str) -> str | None:
    """A regular file of the default branch, read from the mirror; None if there is none.

    A symbolic link (or anything but a plain file) there counts as no file: its target is
    never followed, in the mirror or anywhere else.
    """
    try:
        entry = await git("ls-tree", "-z", found.trusted, "--", path, cwd=found.mirror)
        mode, kind, sha = entry.split("\t", 1)[0].split(" ") if entry else ("", "", "")
        if kind != "blob" or mode not in REGULAR_FILES:
            return None
        return await git("cat-file", "blob", sha, cwd=found.mirror)
    except GitError:
        return None


async def trusted_guidance(found: Checkout) -> str:
    """The repository's guidance files of the default branch, each under its name, bounded."""
    parts = []
    for name in GUIDANCE_FILES:
        text = await read_trusted(found, name)
        if text is not None:
            parts.append(f"## {name}\n{text.strip()}")
    return "\n\n".join(parts)[:GUIDANCE_LIMIT]


async def trusted_test_candidates(found: Checkout) -> list[TestCommand]:
    """The test commands the default branch's files suggest, most likely first."""
    listing = await git("ls-tree", "-r", "--name-only", found.trusted, cwd=found.mirror)
    files = listing.splitlines()
    texts: dict[str, str] = {}
    for path in READ_FOR_DETECTION:
        if path in files:
            texts[path] = await read_trusted(found, path) or ""
    return candidate_commands(files, lambda path: texts.get(path, ""))


def _fresh_dir(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)


def clean_up(found: Checkout) -> None:
    shutil.rmtree(found.job_dir, ignore_errors=True)
