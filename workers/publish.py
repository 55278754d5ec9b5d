"""Publishing a change on GitHub: branch, pull request, reviewers, check run, replies.

Each step first looks for what an earlier run of the same job made, because arq runs a job at
least once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, cast

import structlog
from githubkit import GitHub
from githubkit.exception import RequestFailed
from githubkit_schemas.latest.models import PullRequestSimple
from githubkit_schemas.latest.types import (
    ReposOwnerRepoCheckRunsCheckRunIdPatchBodyPropOutputType,
    ReposOwnerRepoCheckRunsPostBodyOneof0Type,
    ReposOwnerRepoCheckRunsPostBodyPropOutputType,
)

from bot.redaction import redact
from workers.change_guard import LeftOut, guard_staged_change, left_out_markdown
from workers.git import git, worker_tree
from workers.pr_body import Verification, check_run_output, clamp
from workers.signed_commit import commit_through_api
from workers.workspace import Checkout

log = structlog.get_logger("qwen_fix.publish")

CHECK_NAME = "qwen-fix"
CONCLUSIONS: dict[bool | None, Literal["success", "failure", "neutral"]] = {
    True: "success",
    False: "failure",
    None: "neutral",
}


@dataclass(frozen=True, slots=True)
class Commit:
    sha: str
    stat: str
    """`git diff --stat` of the change, for the pull request body."""
    files: frozenset[str]
    """Paths the change touched."""
    left_out: tuple[LeftOut, ...] = ()
    """Paths of the sandbox's patch the app did not publish, with the reason for each."""


class NothingToPublish(Exception):
    """Every file of the patch was left out by the change guard; the message says why."""

    def __init__(self, left_out: list[LeftOut]) -> None:
        self.left_out = tuple(left_out)
        super().__init__(left_out_markdown(left_out))


async def publish_commit(
    client: GitHub,
    found: Checkout,
    patch: str,
    message: str,
    *,
    branch: str,
    force: bool,
    signed: bool,
) -> Commit:
    """The sandbox's patch as one commit on `branch`, on top of the checkout's base commit.

    `signed` makes it through GitHub's Git Database API (shown as Verified); otherwise it is
    committed in the worker's tree and pushed. A follow-up never forces over reviewers' pushes.
    """
    message = redact(message)
    left_out = await stage(found, patch)
    tree = found.publish_tree
    names = await git("diff", "--cached", "--name-only", "-z", cwd=tree)
    files = frozenset(name for name in names.split("\0") if name)
    if not files:
        raise NothingToPublish(left_out)
    stat = await git("diff", "--cached", "--stat", cwd=tree)
    if signed:
        sha = await commit_through_api(
            client, found, message=message, parent=found.base, branch=branch, force=force
        )
    else:
        await git("commit", "--quiet", "--no-verify", "-m", message, cwd=tree)
        sha = (await git("rev-parse", "HEAD", cwd=tree)).strip()
        await push(found, branch, force=force)
    return Commit(sha, stat, files, tuple(left_out))


async def stage(found: Checkout, patch: str) -> list[LeftOut]:
    """Apply the patch to the index of the worker's own tree, then unstage what the app must
    not publish; returns what was left out.

    The tree has no files, only an index at the base (`worker_tree`): staging costs what the
    patch touches, not a checkout of the whole repository."""
    tree = found.publish_tree
    await worker_tree(found.mirror, tree, found.base)
    # The patch is untrusted data from the sandbox; git apply refuses paths outside the tree,
    # inside .git, and beyond a symbolic link (in the index, which is all there is here).
    await git(
        "apply", "--cached", "--binary", "--whitespace=nowarn", "-",
        cwd=tree, stdin=patch.encode("utf-8", "surrogateescape"),
    )  # fmt: skip
    return await guard_staged_change(tree, found.base)


async def push(found: Checkout, branch: str, *, force: bool) -> None:
    """Push the worker tree's HEAD to `branch`; a follow-up never forces over reviewers' pushes."""
    args = ["push", "--quiet", found.clone_url, f"HEAD:refs/heads/{branch}"]
    if force:
        args.insert(1, "--force")
    await git(*args, cwd=found.publish_tree, auth=found.auth)


async def branch_is_protected(client: GitHub, repository: str, branch: str) -> bool:
    """Whether GitHub protects `branch`; a branch that does not exist yet is not protected."""
    owner, name = repository.split("/", 1)
    try:
        found = await client.rest.repos.async_get_branch(owner, name, branch)
    except RequestFailed as exc:
        if exc.response.status_code == 404:
            return False
        raise
    return bool(found.parsed_data.protected)


async def upsert_pull_request(
    client: GitHub, repository: str, *, head: str, base: str, title: str, body: str, draft: bool
) -> tuple[int, str]:
    """The open pull request from `head`, updated, or a new one; returns (number, url)."""
    owner, name = repository.split("/", 1)
    existing = await client.rest.pulls.async_list(owner, name, head=f"{owner}:{head}", state="open")
    # githubkit's generated `list` annotation is opaque to mypy; the runtime type is this.
    for pr in cast(list[PullRequestSimple], existing.parsed_data):
        await client.rest.pulls.async_update(owner, name, pr.number, title=title, body=clamp(body))
        return pr.number, pr.html_url
    created = await client.rest.pulls.async_create(
        owner, name, title=title, body=clamp(body), head=head, base=base, draft=draft
    )
    return created.parsed_data.number, created.parsed_data.html_url


async def request_review(client: GitHub, repository: str, number: int, login: str) -> None:
    owner, name = repository.split("/", 1)
    try:
        await client.rest.pulls.async_request_reviewers(owner, name, number, reviewers=[login])
    except RequestFailed as exc:
        # Not a collaborator any more, or the author of the PR: a missing review request is
        # no reason to fail the job.
        log.warning("publish.review_request_failed", login=login, status=exc.response.status_code)


async def post_check_run(
    client: GitHub, repository: str, head_sha: str, verification: Verification, *, app_id: int
) -> None:
    """A completed `qwen-fix` check run on the commit, holding the whole test log.

    The app's own run on that commit, if an earlier try of the job posted one, is updated: a
    job run again after a crash leaves one run per commit, not two."""
    owner, name = repository.split("/", 1)
    title, summary, text = check_run_output(verification)
    output: ReposOwnerRepoCheckRunsPostBodyPropOutputType = {"title": title, "summary": summary}
    if text:
        output["text"] = text
    data: ReposOwnerRepoCheckRunsPostBodyOneof0Type = {
        "name": CHECK_NAME,
        "head_sha": head_sha,
        "status": "completed",
        "conclusion": CONCLUSIONS[verification.passed],
        "output": output,
    }
    earlier = await client.rest.checks.async_list_for_ref(
        owner, name, head_sha, check_name=CHECK_NAME, app_id=app_id, filter_="latest"
    )
    for run in earlier.parsed_data.check_runs:
        again: ReposOwnerRepoCheckRunsCheckRunIdPatchBodyPropOutputType = {**output}
        await client.rest.checks.async_update(
            owner, name, run.id, status="completed", conclusion=data["conclusion"], output=again
        )
        return
    await client.rest.checks.async_create(owner, name, data=data)
