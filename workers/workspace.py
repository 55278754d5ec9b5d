"""A job's working copies: the mirror fetch, the sandbox's checkout and the worker's own tree.

A warm job costs what changed, not the repository's history: the mirror fetches only the
branches the job needs; the sandbox's checkout borrows the mirror's objects through a read-only
share (workers/object_share.py) and starts from a spare checkout made after the last job, so
it writes only the files that changed since (workers/spare_checkouts.py); the worker's publish
tree is an index over the mirror's objects with no files at all.

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

import structlog
from githubkit import GitHub

from bot.github import GitHubApp
from bot.repo_config import CONFIG_PATH
from workers import spare_checkouts
from workers.agent.prompts import GUIDANCE_FILES, GUIDANCE_LIMIT
from workers.git import GitAuth, GitError, MirrorCache, git, resolve
from workers.object_share import Share, check_out, share_objects
from workers.test_command import READ_FOR_DETECTION, TestCommand, candidate_commands

log = structlog.get_logger("qwen_fix.workspace")

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
    def sandbox_objects(self) -> Path:
        """The sandbox's read-only share of the mirror's objects, when it has no pool slot's."""
        return self.job_dir / "objects"

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
    mirror = await mirrors.update(repo.clone_url, auth, [repo.default_branch])
    trusted = await resolve(mirror, f"refs/heads/{repo.default_branch}")
    base = await resolve(mirror, ref) if ref else trusted
    await asyncio.to_thread(_fresh_dir, job_dir)
    return Checkout(
        repository, repo.clone_url, repo.default_branch, base, trusted, mirror, auth, job_dir
    )


async def branch_head(mirrors: MirrorCache, found: Checkout, branch: str) -> str:
    """The commit `branch` is at now, fetched into the mirror (it holds only the branches
    jobs asked for)."""
    await mirrors.update(found.clone_url, found.auth, [branch])
    return await resolve(found.mirror, f"refs/heads/{branch}")


async def sandbox_checkout(
    mirrors: MirrorCache, found: Checkout, workspace: Path, objects: Path
) -> Share:
    """The base commit checked out at `workspace` (empty or missing) for a sandbox that mounts
    `objects` read-only at OBJECTS_MOUNT, and the mirror's objects shared into `objects`.

    A spare checkout of the repository, when there is one, becomes the workspace; either way
    the next spare is then made in the background, at the default branch's head."""
    shared = await share_objects(mirrors, found.mirror, objects)
    refs = ["refs/tags", f"refs/heads/{found.default_branch}"]
    took_spare = await asyncio.to_thread(spare_checkouts.take, found.mirror, workspace)
    try:
        await check_out(found.mirror, objects, workspace, found.base, refs=refs)
    except GitError:
        if not took_spare:
            raise
        # A broken spare (half removed by a worker sharing the data directory, say): start
        # again from an empty workspace.
        log.warning("workspace.spare_failed", exc_info=True)
        await asyncio.to_thread(spare_checkouts.empty, workspace)
        await check_out(found.mirror, objects, workspace, found.base, refs=refs)
    spare_checkouts.make_next(mirrors, found.mirror, found.trusted)
    return shared


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
