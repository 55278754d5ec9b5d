"""Where a pull's head lives (its own repository or a fork) and GitHub's `refs/pull/N/head`,
the ref in the base repository that follows the head branch wherever that branch lives."""

from __future__ import annotations

from tests.github_emulator import bare_repos
from tests.github_emulator.state import Issue, PullRequest, Repo, World

ZERO_SHA = "0" * 40


def head_ref_name(number: int) -> str:
    return f"refs/pull/{number}/head"


def head_repo(repo: Repo, pull: PullRequest) -> Repo | None:
    """The repository holding the head branch; None once that fork was deleted."""
    found = repo if pull.head_repo is None else pull.head_repo
    return None if found.deleted else found


def head_and_base(repo: Repo, issue: Issue) -> tuple[str, str]:
    """The pull's head and base commits. A fork's head is read from refs/pull/N/head, which
    keeps the last commit GitHub saw after the fork or its branch is gone; a deleted branch
    of the repository itself reads as zeros."""
    assert issue.pull is not None
    heads = bare_repos.branches(repo.path)
    base = heads.get(issue.pull.base_ref, ZERO_SHA)
    if issue.pull.head_repo is None:
        return heads.get(issue.pull.head_ref, ZERO_SHA), base
    return bare_repos.resolve(repo.path, head_ref_name(issue.number)) or ZERO_SHA, base


def sync(world: World, changed: Repo) -> None:
    """Move refs/pull/N/head of every open pull whose head branch lives in `changed` to that
    branch's tip, fetching a fork's commits into the base repository as GitHub does."""
    if changed.deleted:
        return
    tips = bare_repos.branches(changed.path)
    for base in list(world.repos.values()):
        for issue in list(base.issues.values()):
            pull = issue.pull
            if pull is None or issue.state != "open" or head_repo(base, pull) is not changed:
                continue
            tip, ref = tips.get(pull.head_ref), head_ref_name(issue.number)
            if tip is None or bare_repos.resolve(base.path, ref) == tip:
                continue
            if changed is base:
                bare_repos.update_ref(base.path, ref, tip)
            else:
                bare_repos.fetch_branch(base.path, changed.path, pull.head_ref, ref)
