"""Which branch a job may push to, decided by the worker from GitHub's answers, never by the model.

An issue job pushes its own branch (`<prefix>issue-N`). A follow-up pushes to the pull request's
head branch, and only when all of these hold:
- the branch is in this repository: a fork's branch is its owner's, and the app's token cannot
  (and must not) write there; `refs/heads/<name>` of this repository is another branch;
- it is not the default branch and not a protected branch;
- the pull request is the app's own (its branch prefix or its bot account opened it), unless
  the repository's config (on the default branch) says `follow_ups: any`, which opens people's
  pull requests in this repository to follow-ups too.
Otherwise the app answers where it was asked, saying what it can do instead.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class PullFacts:
    """What GitHub says of a pull request, and of the repository it targets."""

    number: int
    repository: str
    """The base repository, owner/name."""
    head_repository: str | None
    """Where the head branch lives; None when that fork was deleted."""
    head_ref: str
    author: str
    default_branch: str
    protected: bool
    """Whether the head branch is protected (false for a fork's branch: not ours to ask)."""


@dataclass(frozen=True, slots=True)
class PushPolicy:
    """What the repository's config (default branch) and the app's identity contribute."""

    bot_login: str
    """The app's account, `<slug>[bot]`."""
    branch_prefix: str
    people_pull_requests: bool = False
    """`follow_ups: any`: follow-ups may push to people's pull requests in this repository."""


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why the app will not push; shown to the person who asked."""

    reason: str


def follow_up_branch(pull: PullFacts, policy: PushPolicy, command: str) -> str | Refusal:
    """The branch a follow-up on `pull` pushes to, or why it must not push at all."""
    head_repository = (pull.head_repository or "").casefold()
    if not head_repository or head_repository != pull.repository.casefold():
        where = f"`{pull.head_repository}`" if pull.head_repository else "a fork that was deleted"
        return Refusal(
            f"This pull request's branch lives in {where}, and I push only to branches of "
            f"`{pull.repository}`, so I cannot add commits to it. I can still help: describe "
            f"the change in an issue and comment `/{command}` there, and I will open a pull "
            "request of my own."
        )
    if pull.head_ref == pull.default_branch:
        return Refusal(
            f"This pull request's branch is `{pull.head_ref}`, the default branch: I never push "
            f"there. Comment `/{command}` on an issue and I will open a pull request instead."
        )
    if pull.protected:
        return Refusal(
            f"The branch `{pull.head_ref}` is protected, so I do not push to it. Comment "
            f"`/{command}` on an issue and I will open a pull request instead."
        )
    ours = pull.author == policy.bot_login or pull.head_ref.startswith(policy.branch_prefix)
    if not ours and not policy.people_pull_requests:
        return Refusal(
            f"I push only to pull requests I opened, and @{pull.author} opened this one. To "
            "let me add commits to people's pull requests in this repository, set "
            "`follow_ups: any` in `.github/qwen-fix.yml` on the default branch."
        )
    return pull.head_ref


def issue_branch_refusal(branch: str, default_branch: str, protected: bool) -> Refusal | None:
    """Why an issue job must not (force-)push its branch, or None."""
    if branch == default_branch:
        return Refusal(f"The branch `{branch}` is the default branch: I never push there.")
    if protected:
        return Refusal(
            f"The branch `{branch}` is protected, so I do not push to it. Change "
            "`branch_prefix` in `.github/qwen-fix.yml` to a prefix of unprotected branches."
        )
    return None
