"""read_file, write_file and diff, checked by applying the diff to a fresh clone on the host."""

from __future__ import annotations

import asyncio
from pathlib import Path

import docker
import pytest

from sandbox.config import SandboxConfig
from sandbox.docker import DockerSandbox
from tests.sandbox.conftest import TEST_LABELS


async def test_write_then_read_in_workspace_as_sandbox_user(sandbox: DockerSandbox) -> None:
    await sandbox.write_file("deep/new/file.txt", b"content\n")
    assert await sandbox.read_file("deep/new/file.txt") == b"content\n"
    assert await sandbox.read_file("/workspace/deep/new/file.txt") == b"content\n"
    owners = await sandbox.run("stat -c '%u:%g %a' deep/new/file.txt deep/new deep")
    assert owners.output == "1000:1000 644\n1000:1000 755\n1000:1000 755\n"


async def test_overwriting_keeps_the_executable_bit(sandbox: DockerSandbox) -> None:
    await sandbox.write_file("run.sh", b"#!/bin/sh\necho changed\n")
    assert (await sandbox.run("./run.sh")).output == "changed\n"


async def test_files_outside_the_workspace_go_through_the_shell(sandbox: DockerSandbox) -> None:
    data = bytes(range(256)) * 1000
    await sandbox.write_file("/tmp/scratch/data.bin", data)
    assert await sandbox.read_file("/tmp/scratch/data.bin") == data
    with pytest.raises(FileNotFoundError):
        await sandbox.read_file("/tmp/missing")
    with pytest.raises(PermissionError):
        await sandbox.write_file("/etc/evil", b"x")


async def test_read_missing_and_directory(sandbox: DockerSandbox) -> None:
    with pytest.raises(FileNotFoundError):
        await sandbox.read_file("nope.txt")
    with pytest.raises(IsADirectoryError):
        await sandbox.read_file(".git")


async def test_read_follows_symlinks_inside_the_workspace(sandbox: DockerSandbox) -> None:
    await sandbox.run("ln -s README.md link.md")
    assert await sandbox.read_file("link.md") == b"hello\n"


async def test_diff_applies_to_a_fresh_clone(
    docker_client: docker.DockerClient, small_config: SandboxConfig, checkout: Path, tmp_path: Path
) -> None:
    # Clone first: once started, the checkout belongs to the sandbox uid and host git balks.
    clone = tmp_path / "clone"
    await git("clone", "-q", str(checkout), str(clone))
    box = await DockerSandbox.start(docker_client, small_config, checkout, labels=TEST_LABELS)
    try:
        await box.write_file("README.md", b"hello\nworld\n")
        await box.write_file("src/new.py", "print('ünïcode')\n".encode())
        await box.write_file("blob.bin", bytes(reversed(range(256))) * 8)
        await box.write_file("ignored/cache.txt", b"not in the diff\n")
        await box.run("rm run.sh && git add README.md")
        patch = await box.diff()
        status = await box.run("git status --porcelain")
    finally:
        await box.close()
    assert "ignored/cache.txt" not in patch
    assert "GIT binary patch" in patch
    assert "?? src/" in status.output, "diff must leave the user's index alone"

    (tmp_path / "change.patch").write_bytes(patch.encode("utf-8", "surrogateescape"))
    await git("-C", str(clone), "apply", str(tmp_path / "change.patch"))
    assert (clone / "README.md").read_text() == "hello\nworld\n"
    assert (clone / "src/new.py").read_text() == "print('ünïcode')\n"
    assert (clone / "blob.bin").read_bytes() == bytes(reversed(range(256))) * 8
    assert not (clone / "run.sh").exists()


async def git(*args: str) -> None:
    process = await asyncio.create_subprocess_exec("git", *args)
    assert await process.wait() == 0, f"git {args} failed"


async def test_diff_includes_commits_made_in_the_sandbox(sandbox: DockerSandbox) -> None:
    await sandbox.run(
        "echo more >> README.md && git -c user.name=a -c user.email=a@b commit -qam wip"
    )
    patch = await sandbox.diff()
    assert "+more" in patch


async def test_diff_of_an_untouched_workspace_is_empty(sandbox: DockerSandbox) -> None:
    assert await sandbox.diff() == ""
