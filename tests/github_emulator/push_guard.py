"""Which ref updates of a push GitHub refuses to an app, and why: updates of a protected branch,
then (without the `workflows` permission) changes under .github/workflows/. Updates of the
hidden refs/pull/ refs are refused by git itself (receive.hideRefs)."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

from tests.github_emulator import branch_protection, receive_pack, workflow_files
from tests.github_emulator.state import Repo, Token


@dataclass(frozen=True)
class Refusal:
    reason: str
    """What git prints in parentheses after ` ! [remote rejected] <ref>`."""
    messages: tuple[str, ...] = ()
    """Lines the server's hook printed first, each shown as `remote: <line>`."""


def refusals(
    root: Path, repo: Repo, token: Token, push: receive_pack.PushRequest
) -> dict[str, Refusal]:
    """Ref → refusal, for each update of `push` GitHub would not make; `root` holds the scratch
    directory where the pushed objects are read before they enter the repository."""
    guard_workflows = not workflow_files.may_change_workflows(token)
    protected = any(branch_protection.protected_branch(repo, c.ref) for c in push.commands)
    if not guard_workflows and not protected:
        return {}
    with tempfile.TemporaryDirectory(dir=root) as scratch:
        env = receive_pack.quarantine(repo.path, push.pack, Path(scratch))
        found = {c.ref: refusal(repo, c, env, guard_workflows) for c in push.commands}
    return {ref: refused for ref, refused in found.items() if refused is not None}


def refusal(
    repo: Repo, command: receive_pack.Command, env: dict[str, str], guard_workflows: bool
) -> Refusal | None:
    broken = branch_protection.violations(repo, command.ref, command.old, command.new, env)
    if broken:
        messages = branch_protection.remote_messages(command.ref, broken)
        return Refusal(branch_protection.HOOK_DECLINED, tuple(messages))
    if not guard_workflows:
        return None
    reason = workflow_files.refusal(repo.path, command.ref, command.new, repo.default_branch, env)
    return None if reason is None else Refusal(reason)
