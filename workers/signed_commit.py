"""Commits made through GitHub's Git Database API, which GitHub signs: they show as Verified.

The change is applied in the worker's own tree first (as for a pushed commit); its files are then
uploaded as blobs, a tree is made on top of the parent's, and the commit is created with no
author or committer, so GitHub attributes it to the app and signs it.
"""

from __future__ import annotations

import base64
from typing import Literal

from githubkit import GitHub
from githubkit.exception import RequestFailed
from githubkit_schemas.latest.types import ReposOwnerRepoGitTreesPostBodyPropTreeItemsType

from workers.git import git
from workers.workspace import Checkout

Mode = Literal["100644", "100755", "040000", "160000", "120000"]


async def staged_entries(found: Checkout) -> list[tuple[str, Mode, str | None]]:
    """(path, mode, path to upload or None for a deletion) of the staged change."""
    tree = found.publish_tree
    status = await git("diff", "--cached", "--no-renames", "--name-status", "-z", cwd=tree)
    fields = status.split("\0")
    entries: list[tuple[str, Mode, str | None]] = []
    for kind, path in zip(fields[0::2], fields[1::2], strict=False):
        if kind == "D":
            entries.append((path, "100644", None))
            continue
        mode = (await git("ls-files", "-s", "--", path, cwd=tree)).split(" ", 1)[0]
        entries.append((path, _mode(mode), path))
    return entries


async def commit_through_api(
    client: GitHub,
    found: Checkout,
    *,
    message: str,
    parent: str,
    branch: str,
    force: bool,
) -> str:
    """Create the staged change as a signed commit on `branch`; returns its sha."""
    owner, name = found.repository.split("/", 1)
    items: list[ReposOwnerRepoGitTreesPostBodyPropTreeItemsType] = []
    for path, mode, source in await staged_entries(found):
        if source is None:
            items.append({"path": path, "mode": mode, "type": "blob", "sha": None})
            continue
        content = (found.publish_tree / source).read_bytes()
        blob = await client.rest.git.async_create_blob(
            owner, name, content=base64.b64encode(content).decode(), encoding="base64"
        )
        items.append({"path": path, "mode": mode, "type": "blob", "sha": blob.parsed_data.sha})
    base_tree = (await git("rev-parse", f"{parent}^{{tree}}", cwd=found.publish_tree)).strip()
    tree = await client.rest.git.async_create_tree(owner, name, tree=items, base_tree=base_tree)
    commit = await client.rest.git.async_create_commit(
        owner, name, message=message, tree=tree.parsed_data.sha, parents=[parent]
    )
    sha = commit.parsed_data.sha
    await _point_branch(client, owner, name, branch, sha, force)
    return sha


async def _point_branch(
    client: GitHub, owner: str, name: str, branch: str, sha: str, force: bool
) -> None:
    try:
        await client.rest.git.async_update_ref(owner, name, f"heads/{branch}", sha=sha, force=force)
    except RequestFailed as exc:
        if exc.response.status_code != 422:
            raise
        # 422 "Reference does not exist": the first commit on this branch.
        await client.rest.git.async_create_ref(owner, name, ref=f"refs/heads/{branch}", sha=sha)


def _mode(value: str) -> Mode:
    modes: dict[str, Mode] = {"100755": "100755", "120000": "120000", "160000": "160000"}
    return modes.get(value, "100644")
