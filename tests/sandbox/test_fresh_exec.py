"""The worker's own view of a sandbox after the agent: fresh execs, stopped processes, a final
diff through a git directory of its own, and the sweep of files the change does not carry.

Each test plays the session as a hostile model would and checks the worker's view holds."""

from __future__ import annotations

import subprocess
from pathlib import Path

import docker
import pytest

from sandbox.config import SandboxConfig
from sandbox.docker import DockerSandbox
from tests.sandbox.conftest import TEST_LABELS

pytestmark = pytest.mark.docker


def clone(checkout: Path, tmp_path: Path) -> Path:
    """A host clone, made before a sandbox takes the checkout (host git then balks at it)."""
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(checkout), str(clone)], check=True)
    return clone


def apply(clone: Path, patch: str) -> None:
    subprocess.run(
        ["git", "-C", str(clone), "apply", "--binary", "-"],
        input=patch.encode("utf-8", "surrogateescape"),
        check=True,
    )


async def test_a_fresh_exec_ignores_the_session_state(sandbox: DockerSandbox) -> None:
    await sandbox.run("cd /tmp && export VERDICT=forged")
    # The session's state file is the sandbox's to write: anything in it runs in the session.
    await sandbox.run(
        "echo 'sh() { echo forged; }; export PATH=/nowhere' >>/tmp/.qwen-fix-shell-state"
    )
    assert "forged" in (await sandbox.run("echo $VERDICT")).output
    result = await sandbox.run_fresh('pwd; echo "[$VERDICT]"; echo $PATH; exit 3', timeout=30)
    assert result.exit_code == 3
    lines = result.output.splitlines()
    assert lines[0] == "/workspace"
    assert lines[1] == "[]"
    assert "/usr/bin" in lines[2]


async def test_a_fresh_exec_times_out_and_stops_everything(sandbox: DockerSandbox) -> None:
    result = await sandbox.run_fresh("echo started; sleep 60", timeout=1)
    assert result.timed_out and result.exit_code == -1
    assert "started" in result.output
    left = await sandbox.run_fresh("ps -eo args | grep -c '[s]leep 60'", timeout=30)
    assert left.output.strip() == "0"


async def test_stop_processes_kills_daemons_and_keeps_the_container(
    sandbox: DockerSandbox,
) -> None:
    await sandbox.run(
        "setsid sh -c 'while :; do date >/tmp/daemon; sleep 0.1; done' >/dev/null 2>&1 &"
    )
    await sandbox.run("nohup sleep 1000 >/dev/null 2>&1 &")
    await sandbox.stop_processes()
    ps = await sandbox.run_fresh("ps -eo pid,args", timeout=30)
    assert "sleep 1000" not in ps.output
    assert "while :" not in ps.output
    # The session shell comes back for the next command, with the container still alive.
    assert (await sandbox.run("echo alive")).output.endswith("alive\n")


async def test_the_final_diff_ignores_what_the_sandbox_wrote_into_git(
    docker_client: docker.DockerClient, small_config: SandboxConfig, checkout: Path, tmp_path: Path
) -> None:
    host = clone(checkout, tmp_path)
    sandbox = await DockerSandbox.start(docker_client, small_config, checkout, labels=TEST_LABELS)
    try:
        patch = await forge_the_index_and_diff(sandbox)
    finally:
        await sandbox.close()
    apply(host, patch)
    assert (host / "README.md").read_text() == "changed\n"
    assert (host / "added.txt").read_text() == "new\n"
    assert (host / "run.sh").exists()  # the diff is against the real base, not the replacement


async def forge_the_index_and_diff(sandbox: DockerSandbox) -> str:
    await sandbox.run("printf 'changed\\n' > README.md && printf 'new\\n' > added.txt")
    # A clean filter in .git/config would make the index (the patch) differ from the tree.
    await sandbox.run(
        "git config filter.hide.clean 'sed s/changed/innocent/' && "
        "echo 'README.md filter=hide' > .git/info/attributes && "
        "echo 'added.txt' >> .git/info/exclude && "
        "git replace $(git rev-parse HEAD) "
        "$(git commit-tree -m x $(git hash-object -t tree /dev/null))"
    )
    return await sandbox.final_diff()


async def test_sweep_removes_what_changed_after_setup_outside_the_change(
    sandbox: DockerSandbox,
) -> None:
    await sandbox.run("mkdir -p ignored /tmp/home/.local && echo setup > ignored/built.txt")
    await sandbox.run("echo setup > /tmp/home/.local/kept.txt")
    sandbox.mark_baseline()
    await sandbox.run("sleep 0.01; echo planted > ignored/conftest.py")
    await sandbox.run("echo 'import os' > /tmp/home/.local/usercustomize.py")
    await sandbox.run("echo fix > README.md && echo new > new.txt")
    swept = await sandbox.sweep()
    assert sorted(swept) == ["./ignored/conftest.py", "/tmp/home/.local/usercustomize.py"]
    listing = await sandbox.run_fresh(
        "ls ignored; ls /tmp/home/.local; cat README.md new.txt", timeout=30
    )
    assert listing.output.split() == ["built.txt", "kept.txt", "fix", "new"]
