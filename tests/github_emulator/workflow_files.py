"""GitHub's guard on `.github/workflows/`: an app without the `workflows` permission may not
move a ref (by push or through the git refs API) to a tree whose workflow files differ.

What GitHub compares is not documented for apps; this follows the documented rule for OAuth
tokens without the `workflow` scope and what users report for app tokens:
- an existing ref is compared with the commit already on it;
- a new ref is compared with the tip of the default branch (a tag or branch made at an older
  commit is refused once the default branch's workflows moved on);
- a created or changed file passes when the same path with the same content is on another
  branch ("Workflow files can be committed without this scope if the same file (with both the
  same path and contents) exists on another branch in the same repository.");
- a deleted file is refused under the same message (an assumption: reports only show creation
  and changes, but the Workflows permission also guards DELETE /contents/{path}).
"""

from __future__ import annotations

from pathlib import Path

from tests.github_emulator import bare_repos
from tests.github_emulator.state import Token

WORKFLOWS = ".github/workflows/"
ZERO_SHA = "0" * 40


def may_change_workflows(token: Token) -> bool:
    return token.installation.permissions.get("workflows") == "write"


def refusal_message(file: str) -> str:
    """The reason GitHub gives, word for word, both in `git push` and in the API's 403."""
    return (
        f"refusing to allow a GitHub App to create or update workflow `{file}` "
        "without `workflows` permission"
    )


def refusal(
    path: Path, ref: str, new: str, default_branch: str, env: dict[str, str] | None = None
) -> str | None:
    """Why moving `ref` to `new` is refused, or None. `env` points git at a push's quarantined
    objects, which the repository does not hold yet."""
    if new == ZERO_SHA:
        return None
    new_tree = tree_of(path, new, env)
    if new_tree is None:
        return None
    base = bare_repos.resolve(path, ref) or bare_repos.resolve(path, f"refs/heads/{default_branch}")
    base_tree = None if base is None else tree_of(path, base, env)
    for status, file, blob in changed_workflows(path, base_tree, new_tree, env):
        if status == "D" or not on_another_branch(path, ref, file, blob):
            return refusal_message(file)
    return None


def tree_of(path: Path, sha: str, env: dict[str, str] | None) -> str | None:
    try:
        return bare_repos.git("rev-parse", "--verify", "--quiet", f"{sha}^{{tree}}",
                              cwd=path, env=env).strip()  # fmt: skip
    except RuntimeError:
        return None


def changed_workflows(
    path: Path, base_tree: str | None, new_tree: str, env: dict[str, str] | None
) -> list[tuple[str, str, str]]:
    """(status A/M/D/T, file, blob in the new tree) of each file under .github/workflows/ that
    differs between the trees; every such file counts as added when there is no base."""
    if base_tree is None:
        listed = bare_repos.git("ls-tree", "-r", "-z", new_tree, "--", WORKFLOWS, cwd=path, env=env)
        entries = (line.split("\t", 1) for line in listed.split("\0") if line)
        return [("A", file, meta.split()[2]) for meta, file in entries]
    raw = bare_repos.git("diff-tree", "-r", "-z", "--no-renames", base_tree, new_tree, "--",
                         WORKFLOWS, cwd=path, env=env)  # fmt: skip
    fields = raw.split("\0")
    # Raw diff-tree output: ":old_mode new_mode old_sha new_sha status", then the path.
    return [
        (meta.split()[4], file, meta.split()[3])
        for meta, file in zip(fields[0::2], fields[1::2], strict=False)
        if meta.startswith(":")
    ]


def on_another_branch(path: Path, ref: str, file: str, blob: str) -> bool:
    for branch, tip in bare_repos.branches(path).items():
        if f"refs/heads/{branch}" != ref and bare_repos.object_type_and_sha(
            path, f"{tip}:{file}"
        ) == ("blob", blob):
            return True
    return False
