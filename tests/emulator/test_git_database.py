"""The git database API (blobs, trees, commits, refs) and contents, seen again by `git fetch`."""

from __future__ import annotations

import base64
import subprocess
from pathlib import Path

import pytest
from githubkit.exception import RequestFailed

from tests.emulator.conftest import FILES, Hub


def git(*args: str, cwd: Path) -> str:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(cwd), "GIT_CONFIG_NOSYSTEM": "1"}
    env["GIT_TERMINAL_PROMPT"] = "0"
    done = subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_an_api_commit_is_verified_and_fetchable(hub: Hub, tmp_path: Path) -> None:
    rest = hub.installed.rest.git
    main = hub.emu.branches(hub.repo)["main"]
    base_tree = rest.get_commit("octo", "hello", main).parsed_data.tree.sha
    blob = rest.create_blob("octo", "hello", content="YiA9IDIwCg==", encoding="base64")
    tree = rest.create_tree(
        "octo", "hello", base_tree=base_tree,
        tree=[
            {"path": "src/app.py", "mode": "100644", "type": "blob", "content": "b = 2\n"},
            {"path": "src/new.py", "mode": "100644", "type": "blob", "sha": blob.parsed_data.sha},
            {"path": "README.md", "mode": "100644", "type": "blob", "sha": None},
        ],
    ).parsed_data  # fmt: skip
    assert sorted(entry.path for entry in tree.tree) == ["src"], "README.md removed"
    commit = rest.create_commit(
        "octo", "hello", message="Fix b\n\nCloses #1", tree=tree.sha, parents=[main]
    ).parsed_data
    assert commit.verification.verified and commit.verification.reason == "valid"
    assert commit.author.name == f"app-{hub.app_id}[bot]"
    assert commit.committer.name == "GitHub"
    assert [p.sha for p in commit.parents] == [main]

    ref = rest.create_ref("octo", "hello", ref="refs/heads/qwen-fix/1", sha=commit.sha)
    assert ref.parsed_data.object_.sha == commit.sha
    with pytest.raises(RequestFailed) as exists:
        rest.create_ref("octo", "hello", ref="refs/heads/qwen-fix/1", sha=commit.sha)
    assert exists.value.response.json()["message"] == "Reference already exists"
    fetched = rest.get_commit("octo", "hello", commit.sha).parsed_data
    assert fetched.verification.verified and fetched.message == "Fix b\n\nCloses #1"
    assert hub.emu.commit_verified(hub.repo, commit.sha)

    url = hub.emu.clone_url(hub.repo).replace(
        "http://", f"http://x-access-token:{hub.emu.installation_token(hub.installation_id)}@"
    )
    git("clone", "--quiet", "--branch", "qwen-fix/1", url, "work", cwd=tmp_path)
    work = tmp_path / "work"
    assert (work / "src" / "app.py").read_text() == "b = 2\n"
    assert (work / "src" / "new.py").read_text() == "b = 20\n"
    assert not (work / "README.md").exists()
    assert git("log", "--format=%s", "-1", cwd=work).strip() == "Fix b"


def test_refs_move_forward_unless_forced(hub: Hub) -> None:
    rest = hub.installed.rest.git
    main = hub.emu.branches(hub.repo)["main"]
    ahead = hub.emu.commit_files(hub.repo, "qwen-fix/1", {"x.txt": "x\n"}, "Ahead")
    with pytest.raises(RequestFailed) as backwards:
        rest.update_ref("octo", "hello", "heads/qwen-fix/1", sha=main)
    assert backwards.value.response.status_code == 422
    assert backwards.value.response.json()["message"] == "Update is not a fast forward"
    assert hub.emu.branches(hub.repo)["qwen-fix/1"] == ahead
    rest.update_ref("octo", "hello", "heads/qwen-fix/1", sha=main, force=True)
    assert hub.emu.branches(hub.repo)["qwen-fix/1"] == main
    rest.update_ref("octo", "hello", "heads/qwen-fix/1", sha=ahead)
    assert hub.emu.branches(hub.repo)["qwen-fix/1"] == ahead


def test_a_commit_naming_its_own_committer_is_not_signed(hub: Hub) -> None:
    rest = hub.installed.rest.git
    main = hub.emu.branches(hub.repo)["main"]
    tree = rest.get_commit("octo", "hello", main).parsed_data.tree.sha
    commit = rest.create_commit(
        "octo", "hello", message="Mine", tree=tree, parents=[main],
        author={"name": "Qwen Fix", "email": "qwen@example.com"},
        committer={"name": "Qwen Fix", "email": "qwen@example.com"},
    ).parsed_data  # fmt: skip
    assert commit.verification.verified is False
    assert commit.verification.reason == "unsigned"
    assert (commit.author.email, commit.committer.email) == ("qwen@example.com",) * 2


def test_contents_come_base64_encoded_at_a_ref(hub: Hub) -> None:
    repos = hub.installed.rest.repos
    hub.emu.commit_files(hub.repo, "other", {"src/app.py": "changed\n"})
    default = repos.get_content("octo", "hello", "src/app.py").json()
    at_other = repos.get_content("octo", "hello", "src/app.py", ref="other").json()
    for found, expected in ((default, FILES["src/app.py"]), (at_other, "changed\n")):
        assert (found["type"], found["encoding"], found["path"]) == ("file", "base64", "src/app.py")
        assert base64.b64decode(found["content"]).decode() == expected
    with pytest.raises(RequestFailed) as missing:
        repos.get_content("octo", "hello", "src/nope.py")
    assert missing.value.response.status_code == 404
