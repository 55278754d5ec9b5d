"""Commits made through GitHub's Git Database API, which GitHub signs: they show as Verified.

The change is staged in the worker's own tree first (as for a pushed commit); each staged blob
is then uploaded from git's object database, never read from the working tree, so a symbolic
link stays a link (its target text, mode 120000) and nothing outside the tree is ever read. A
tree is made on top of the parent's, and the commit is created with no author or committer, so
GitHub attributes it to the app and signs it.
"""

from __future__ import annotations

import base64
from typing import Literal

from githubkit import GitHub
from githubkit.exception import RequestFailed
from githubkit_schemas.latest.types import ReposOwnerRepoGitTreesPostBodyPropTreeItemsType

from workers.change_guard import GITLINK, blob, staged_files
from workers.git import git
from workers.workspace import Checkout

Mode = Literal["100644", "100755", "040000", "160000", "120000"]
TreeItem = ReposOwnerRepoGitTreesPostBodyPropTreeItemsType


async def tree_items(client: GitHub, found: Checkout) -> list[TreeItem]:
    """The staged change as items of a Git Database tree, uploading each new blob."""
    owner, name = found.repository.split("/", 1)
    tree = found.publish_tree
    items: list[TreeItem] = []
    for file in await staged_files(tree):
        if file.deleted:
            items.append({"path": file.path, "mode": "100644", "type": "blob", "sha": None})
        elif file.mode == GITLINK:
            items.append({"path": file.path, "mode": "160000", "type": "commit", "sha": file.sha})
        else:
            content = await blob(tree, file.sha)
            made = await client.rest.git.async_create_blob(
                owner, name, content=base64.b64encode(content).decode(), encoding="base64"
            )
            sha = made.parsed_data.sha
            items.append({"path": file.path, "mode": _mode(file.mode), "type": "blob", "sha": sha})
    return items


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
    items = await tree_items(client, found)
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
