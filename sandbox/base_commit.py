"""Reads a checkout's HEAD commit from its .git files on the host, without running git."""

from __future__ import annotations

import re
from pathlib import Path

EMPTY_TREE = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"
"""git's empty tree: the base to diff against when the checkout has no commit yet."""

_SHA = re.compile(r"^[0-9a-f]{40}([0-9a-f]{24})?$")


class NotACheckout(ValueError):
    """The directory is not a plain git checkout whose HEAD can be read from files."""


def read_head_commit(checkout: Path) -> str:
    """The commit HEAD points at, or EMPTY_TREE for a repository without commits."""
    git_dir = checkout / ".git"
    if not git_dir.is_dir():
        raise NotACheckout(f"{checkout} has no .git directory")
    head = (git_dir / "HEAD").read_text().strip()
    if _SHA.match(head):
        return head
    if not head.startswith("ref: "):
        raise NotACheckout(f"unreadable HEAD: {head!r}")
    commit = _resolve_ref(git_dir, head.removeprefix("ref: ").strip())
    return commit or EMPTY_TREE


def _resolve_ref(git_dir: Path, ref: str) -> str | None:
    loose = git_dir / ref
    if loose.is_file():
        value = loose.read_text().strip()
        if _SHA.match(value):
            return value
        raise NotACheckout(f"unreadable ref {ref}: {value!r}")
    packed = git_dir / "packed-refs"
    if packed.is_file():
        for line in packed.read_text().splitlines():
            sha, _, name = line.partition(" ")
            if name == ref and _SHA.match(sha):
                return sha
    return None
