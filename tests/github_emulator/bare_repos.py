"""Bare git repositories on disk: creation, reads of refs, commits and files, and the object
writes behind GitHub's git database API (blobs, trees, commits, refs)."""

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


@dataclass(frozen=True)
class TreeEntry:
    path: str
    mode: str
    type: str
    sha: str
    size: int | None


def git(*args: str, cwd: Path, env: dict[str, str] | None = None) -> str:
    return git_bytes(*args, cwd=cwd, env=env).decode()


def git_bytes(
    *args: str, cwd: Path, env: dict[str, str] | None = None, stdin: bytes = b""
) -> bytes:
    # A clean environment keeps the machine's git config and the caller's GIT_* out.
    base = {"PATH": "/usr/bin:/bin", "HOME": str(cwd), "GIT_CONFIG_NOSYSTEM": "1"}
    result = subprocess.run(
        ["git", *args],
        cwd=cwd,
        env={**base, **(env or {})},
        input=stdin,
        capture_output=True,
        check=False,
    )
    if result.returncode != 0:
        stderr = result.stderr.decode(errors="replace").strip()
        raise RuntimeError(f"git {' '.join(args)} failed: {stderr}")
    return result.stdout


def create(path: Path, files: dict[str, str], default_branch: str) -> str:
    """Make a bare repository at `path` holding one commit of `files`; return its sha."""
    path.mkdir(parents=True)
    git("init", "--quiet", "--bare", f"--initial-branch={default_branch}", ".", cwd=path)
    configure(path)
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


def configure(path: Path) -> None:
    """Serve pushes over HTTP, and hide refs/pull/ from them as GitHub does: pushes to a
    pull's ref fail with git's own "deny updating a hidden ref"."""
    git("config", "http.receivepack", "true", cwd=path)
    git("config", "receive.hideRefs", "refs/pull/", cwd=path)


def clone(source: Path, path: Path, only_branch: str | None = None) -> None:
    """A bare copy of `source`'s branches and tags at `path` (one branch with `only_branch`),
    sharing no objects and remembering no remote, as GitHub makes a fork."""
    path.parent.mkdir(parents=True, exist_ok=True)
    single = ["--single-branch", "--branch", only_branch] if only_branch else []
    git(
        "clone", "--quiet", "--bare", "--no-local", *single, str(source), str(path), cwd=path.parent
    )
    git("remote", "remove", "origin", cwd=path)
    configure(path)


def fetch_branch(path: Path, source: Path, branch: str, ref: str) -> None:
    """Point `ref` of the repository at `path` at `branch` of `source`, objects and all."""
    git("fetch", "--quiet", "--no-tags", str(source), f"+refs/heads/{branch}:{ref}", cwd=path)


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


def object_type(path: Path, sha: str) -> str | None:
    """`blob`, `tree`, `commit` or `tag` for an existing object name; None otherwise."""
    try:
        return git("cat-file", "-t", sha, cwd=path).strip()
    except RuntimeError:
        return None


def write_blob(path: Path, data: bytes) -> str:
    return git_bytes("hash-object", "-w", "--stdin", cwd=path, stdin=data).decode().strip()


def read_blob(path: Path, ref: str, file: str) -> tuple[str, bytes] | None:
    """(blob sha, bytes) of a file at a ref; None when missing or not a file."""
    sha = object_type_and_sha(path, f"{ref}:{file}")
    if sha is None or sha[0] != "blob":
        return None
    return sha[1], git_bytes("cat-file", "blob", sha[1], cwd=path)


def object_type_and_sha(path: Path, name: str) -> tuple[str, str] | None:
    try:
        sha = git("rev-parse", "--verify", "--quiet", name, cwd=path).strip()
    except RuntimeError:
        return None
    kind = object_type(path, sha)
    return None if kind is None else (kind, sha)


def write_tree(
    path: Path, base_tree: str | None, changes: list[tuple[str, str, str | None]]
) -> str:
    """A tree: `base_tree` (or empty) with each (path, mode, sha) set, or removed when sha is
    None (a directory with all it holds). Trees given by sha are read in under their path."""
    with tempfile.TemporaryDirectory() as scratch:
        env = {"GIT_INDEX_FILE": str(Path(scratch) / "index")}
        git("read-tree", *([base_tree] if base_tree else ["--empty"]), cwd=path, env=env)
        for file, mode, sha in changes:
            if sha is None:
                held = git("ls-files", "-z", "--", file, cwd=path, env=env).split("\0")
                removals = "".join(f"0 {'0' * 40}\t{name}\n" for name in held if name)
                git_bytes("update-index", "--index-info", cwd=path, env=env,
                          stdin=removals.encode())  # fmt: skip
            elif mode == "040000":
                git("read-tree", f"--prefix={file}/", sha, cwd=path, env=env)
            else:
                entry = f"{mode} {sha}\t{file}\n".encode()
                git_bytes("update-index", "--add", "--index-info", cwd=path, env=env, stdin=entry)
        return git("write-tree", cwd=path, env=env).strip()


def tree_entries(path: Path, sha: str) -> list[TreeEntry]:
    """The top-level entries of a tree, with blob sizes."""
    entries = []
    for line in git("ls-tree", "-l", "-z", sha, cwd=path).split("\0"):
        if not line:
            continue
        meta, name = line.split("\t", 1)
        mode, kind, object_sha, size = meta.split()
        entries.append(TreeEntry(name, mode, kind, object_sha, None if size == "-" else int(size)))
    return entries


def write_commit(
    path: Path,
    tree: str,
    parents: list[str],
    message: str,
    author: dict[str, str],
    committer: dict[str, str],
) -> str:
    """commit-tree with the given identities: `{name, email, date}` each (date may be "")."""
    env = {
        "GIT_AUTHOR_NAME": author["name"],
        "GIT_AUTHOR_EMAIL": author["email"],
        "GIT_COMMITTER_NAME": committer["name"],
        "GIT_COMMITTER_EMAIL": committer["email"],
    }
    if author.get("date"):
        env["GIT_AUTHOR_DATE"] = author["date"]
    if committer.get("date"):
        env["GIT_COMMITTER_DATE"] = committer["date"]
    args = ["commit-tree", tree]
    for parent in parents:
        args += ["-p", parent]
    out = git_bytes(*args, "-F", "-", cwd=path, env=env, stdin=message.encode())
    return out.decode().strip()


def update_ref(path: Path, ref: str, sha: str) -> None:
    git("update-ref", ref, sha, cwd=path)


def is_ancestor(path: Path, ancestor: str, descendant: str) -> bool:
    try:
        git("merge-base", "--is-ancestor", ancestor, descendant, cwd=path)
    except RuntimeError:
        return False
    return True


def diff(path: Path, base: str, head: str, file: str) -> str:
    """The unified diff of one file between two commits (merge base of base and head first)."""
    return git("diff", "--no-color", f"{base}...{head}", "--", file, cwd=path)
