"""Bare git repositories on disk: creation with one commit, and reads of refs, commits and files."""

from __future__ import annotations

import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

AUTHOR = {
    "GIT_AUTHOR_NAME": "Emulator",
    "GIT_AUTHOR_EMAIL": "emulator@example.com",
    "GIT_COMMITTER_NAME": "Emulator",
    "GIT_COMMITTER_EMAIL": "emulator@example.com",
}


@dataclass(frozen=True)
class CommitInfo:
    sha: str
    tree: str
    parents: list[str]
    author_name: str
    author_email: str
    author_date: str
    committer_name: str
    committer_email: str
    committer_date: str
    message: str


def git(*args: str, cwd: Path, env: dict[str, str] | None = None) -> str:
    # A clean environment keeps the machine's git config and the caller's GIT_* out.
    base = {"PATH": "/usr/bin:/bin", "HOME": str(cwd), "GIT_CONFIG_NOSYSTEM": "1"}
    result = subprocess.run(
        ["git", *args],
        cwd=cwd,
        env={**base, **(env or {})},
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)} failed: {result.stderr.strip()}")
    return result.stdout


def create(path: Path, files: dict[str, str], default_branch: str) -> str:
    """Make a bare repository at `path` holding one commit of `files`; return its sha."""
    path.mkdir(parents=True)
    git("init", "--quiet", "--bare", f"--initial-branch={default_branch}", ".", cwd=path)
    git("config", "http.receivepack", "true", cwd=path)
    with tempfile.TemporaryDirectory() as work_dir:
        work = Path(work_dir)
        git("init", "--quiet", f"--initial-branch={default_branch}", ".", cwd=work)
        for name, text in files.items():
            target = work / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text)
        git("add", "--all", cwd=work)
        git("commit", "--quiet", "--allow-empty", "-m", "Initial commit", cwd=work, env=AUTHOR)
        git("push", "--quiet", str(path), f"HEAD:refs/heads/{default_branch}", cwd=work)
        return git("rev-parse", "HEAD", cwd=work).strip()


def branches(path: Path) -> dict[str, str]:
    """Branch name → commit sha."""
    out = git("for-each-ref", "--format=%(refname) %(objectname)", "refs/heads", cwd=path)
    heads = (line.split(" ") for line in out.splitlines() if line)
    return {ref.removeprefix("refs/heads/"): sha for ref, sha in heads}


def resolve(path: Path, ref: str) -> str | None:
    """The object a full ref name (refs/heads/main) points at, or None."""
    out = git("for-each-ref", "--format=%(refname) %(objectname)", ref, cwd=path)
    for line in out.splitlines():
        name, sha = line.split(" ")
        if name == ref:
            return sha
    return None


def file_at(path: Path, ref: str, file: str) -> str | None:
    """A file's text at a branch, tag or sha; None when it is not there."""
    try:
        return git("show", f"{ref}:{file}", cwd=path)
    except RuntimeError:
        return None


def commit(path: Path, sha: str) -> CommitInfo:
    fields = ["%H", "%T", "%P", "%an", "%ae", "%aI", "%cn", "%ce", "%cI", "%B"]
    out = git("show", "--no-patch", "--format=" + "%x00".join(fields), sha, cwd=path)
    values = out.split("\x00")
    return CommitInfo(
        sha=values[0],
        tree=values[1],
        parents=values[2].split(),
        author_name=values[3],
        author_email=values[4],
        author_date=values[5],
        committer_name=values[6],
        committer_email=values[7],
        committer_date=values[8],
        message=values[9].rstrip("\n"),
    )
