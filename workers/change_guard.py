"""What of the sandbox's change the app publishes: rules the worker holds whatever the model did.

The patch comes from a sandbox the model drives, and the model reads text written by strangers.
Once the patch is staged in the worker's own tree, every staged file is checked here and the
ones the app must not publish are unstaged, with a reason shown on GitHub. The rest of the
change goes on. Nothing here reads the working tree: paths, modes and link targets come from
git's index and object database, so a symbolic link is never followed.
"""

from __future__ import annotations

import os
import posixpath
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bot.repo_config import CONFIG_PATH
from workers.git import git, git_bytes

WORKFLOWS_DIR = ".github/workflows/"
SYMLINK = "120000"
GITLINK = "160000"
ABSENT = "000000"
LITERAL_PATHS = {"GIT_LITERAL_PATHSPECS": "1"}

WORKFLOW_REASON = (
    "GitHub lets only apps with the `workflows` permission change workflow files, and qwen-fix "
    "does not ask for it: a maintainer has to make this change"
)
CONFIG_REASON = "qwen-fix's own configuration is changed by people, not by qwen-fix"
LINK_REASON = "a symbolic link that points outside the repository"
GITLINK_REASON = "qwen-fix does not move submodules"


@dataclass(frozen=True, slots=True)
class StagedFile:
    """One path of the staged change, as `git diff --cached --raw` reports it."""

    path: str
    old_mode: str
    mode: str
    """The new mode; ABSENT for a deletion."""
    sha: str
    """The new blob (or, for a submodule, commit); all zeros for a deletion."""

    @property
    def deleted(self) -> bool:
        return self.mode == ABSENT


@dataclass(frozen=True, slots=True)
class LeftOut:
    """A path the app did not publish, and why, in words for the pull request."""

    path: str
    reason: str


def leave_out_reason(file: StagedFile, link_target: bytes | None = None) -> str | None:
    """Why `file` must not be published, or None. `link_target` is a symlink's text."""
    if file.path.startswith(WORKFLOWS_DIR):
        return WORKFLOW_REASON
    if file.path == CONFIG_PATH:
        return CONFIG_REASON
    if file.mode == GITLINK:
        return GITLINK_REASON
    if file.mode == SYMLINK and (link_target is None or escapes(file.path, link_target)):
        return LINK_REASON
    return None


def escapes(path: str, target: bytes) -> bool:
    """True when a link at `path` to `target` leads outside the repository's root."""
    text = os.fsdecode(target)
    if not text or text.startswith("/") or "\0" in text:
        return True
    resolved = posixpath.normpath(posixpath.join(posixpath.dirname(path), text))
    return resolved == ".." or resolved.startswith("../")


def parse_raw_diff(output: str) -> list[StagedFile]:
    """Entries of `git diff --raw -z --no-renames` output."""
    fields = output.split("\0")
    files = []
    for header, path in zip(fields[0::2], fields[1::2], strict=False):
        if not header.startswith(":"):
            continue
        old_mode, mode, _old_sha, sha, _status = header[1:].split(" ", 4)
        files.append(StagedFile(path=path, old_mode=old_mode, mode=mode, sha=sha))
    return files


async def staged_files(tree: Path) -> list[StagedFile]:
    """The change staged in `tree`'s index against its HEAD."""
    output = await git("diff", "--cached", "--no-renames", "--raw", "-z", cwd=tree)
    return parse_raw_diff(output)


async def blob(tree: Path, sha: str) -> bytes:
    """A blob from the object database: for a symlink, its target text."""
    return await git_bytes("cat-file", "blob", sha, cwd=tree)


async def guard_staged_change(tree: Path, base: str) -> list[LeftOut]:
    """Unstage every file the app must not publish (back to `base`); returns what was left out."""
    left_out = []
    for file in await staged_files(tree):
        target = await blob(tree, file.sha) if file.mode == SYMLINK else None
        reason = leave_out_reason(file, target)
        if reason is not None:
            left_out.append(LeftOut(file.path, reason))
    if left_out:
        paths = [item.path for item in left_out]
        await git("reset", "--quiet", base, "--", *paths, cwd=tree, env=LITERAL_PATHS)
    return left_out


def left_out_markdown(left_out: Sequence[LeftOut]) -> str:
    """The pull request's (or reply's) account of what was not published."""
    if not left_out:
        return ""
    lines = ["**Left out of this change** (the rest was published):"]
    lines += [f"- `{_code(item.path)}`: {item.reason}." for item in left_out]
    return "\n".join(lines)


def _code(text: str) -> str:
    """A path in a Markdown code span: no backticks or line breaks from a hostile name."""
    return "".join(" " if ch in "`\r\n" else ch for ch in text)[:200]
