"""Classic branch protection as GitHub applies it to an app: a protected branch requires pull
requests (so no app pushes to it or moves it through the git refs API), forbids force pushes
and cannot be deleted; the app is on no bypass list.

The wording is GitHub's, as users report it:
- `git push` prints ``remote: error: GH006: Protected branch update failed for refs/heads/main.``
  then one ``remote: - <violation>`` line per rule broken, each after an empty ``remote:`` line,
  and `` ! [remote rejected] main -> main (protected branch hook declined)``
  (https://github.com/foundry-rs/block-explorers/pull/110,
  https://github.com/az-digital/arizona-bootstrap/issues/1524,
  https://github.com/bcgov/bcparks.ca/pull/1631, https://github.com/OSGeo/grass/issues/1286);
- PATCH /repos/{owner}/{repo}/git/refs/{ref} answers 422 with the violation as the message
  (dependabot-core's recorded responses in common/spec/fixtures/github/*protected_branch*.json
  and its handling of "Changes must be made through a pull request", dependabot/dependabot-core
  f7a74aeeda; https://github.com/googleapis/repo-automation-bots/issues/5551).
"""

from __future__ import annotations

from pathlib import Path

from tests.github_emulator import bare_repos
from tests.github_emulator.state import Repo

ZERO_SHA = "0" * 40
HOOK_DECLINED = "protected branch hook declined"
THROUGH_PULL_REQUEST = "Changes must be made through a pull request."
NO_FORCE_PUSH = "Cannot force-push to this branch"
NO_DELETION = "Cannot delete this protected branch"
DOCUMENTATION_URL = "https://docs.github.com/rest/git/refs#update-a-reference"
"""The documentation_url of the 422 (dependabot-core's 2024 recording of a refused update)."""


def protected_branch(repo: Repo, ref: str) -> str | None:
    """The protected branch a full ref name (refs/heads/x) names, if any."""
    branch = ref.removeprefix("refs/heads/")
    return branch if ref.startswith("refs/heads/") and branch in repo.protected_branches else None


def violations(
    repo: Repo, ref: str, old: str, new: str, env: dict[str, str] | None = None
) -> list[str]:
    """The rules moving `ref` from `old` to `new` breaks, in GitHub's words; none when the ref
    is not a protected branch. `env` points git at a push's quarantined objects."""
    if protected_branch(repo, ref) is None:
        return []
    if new == ZERO_SHA:
        return [NO_DELETION]
    if old != ZERO_SHA and not _fast_forward(repo.path, old, new, env):
        return [THROUGH_PULL_REQUEST, NO_FORCE_PUSH]
    return [THROUGH_PULL_REQUEST]


def _fast_forward(path: Path, old: str, new: str, env: dict[str, str] | None) -> bool:
    try:
        bare_repos.git("merge-base", "--is-ancestor", old, new, cwd=path, env=env)
    except RuntimeError:
        return False
    return True


def remote_messages(ref: str, broken: list[str]) -> list[str]:
    """What the pre-receive hook prints, line by line; git shows each as `remote: <line>`."""
    lines = [f"error: GH006: Protected branch update failed for {ref}."]
    for violation in broken:
        lines += ["", f"- {violation}"]
    return lines


def protection(repo: Repo, branch: str) -> dict[str, object]:
    """The `protection` object of GET /branches/{branch}, as shown to a token without
    administration access: only whether it is on, and the (empty) required status checks."""
    return {
        "enabled": branch in repo.protected_branches,
        "required_status_checks": {"enforcement_level": "off", "contexts": [], "checks": []},
    }
