"""The channel on an image whose only shell is busybox sh (no bash, python or git)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import docker
import pytest

from sandbox.config import SandboxConfig
from sandbox.docker import DockerSandbox, SandboxError
from tests.sandbox.conftest import TEST_LABELS


@pytest.fixture
async def busybox_sandbox(
    docker_client: docker.DockerClient, busybox_image: str, checkout: Path
) -> AsyncIterator[DockerSandbox]:
    config = SandboxConfig(image=busybox_image, memory="128m", pids=32, lifetime=120)
    box = await DockerSandbox.start(docker_client, config, checkout, labels=TEST_LABELS)
    yield box
    await box.close()


async def test_busybox_shell_keeps_state_and_frames_output(busybox_sandbox: DockerSandbox) -> None:
    box = busybox_sandbox
    assert (await box.run("readlink /bin/sh")).output == "busybox\n"
    await box.run("cd /tmp && export MARK=bb")
    assert (await box.run('pwd; echo "$MARK"; printf tail')).output == "/tmp\nbb\ntail"
    assert (await box.run("exit 4")).exit_code == 4


async def test_busybox_timeout_kills_the_group(busybox_sandbox: DockerSandbox) -> None:
    result = await busybox_sandbox.run("sleep 201 & sleep 202", timeout=1)
    assert result.timed_out
    processes = await busybox_sandbox.run("ps -o args")
    assert "sleep 201" not in processes.output and "sleep 202" not in processes.output


async def test_busybox_files_and_missing_git(busybox_sandbox: DockerSandbox) -> None:
    await busybox_sandbox.write_file("/tmp/a/b.bin", b"\x00\x01binary")
    assert await busybox_sandbox.read_file("/tmp/a/b.bin") == b"\x00\x01binary"
    await busybox_sandbox.write_file("notes.txt", b"n\n")
    assert await busybox_sandbox.read_file("notes.txt") == b"n\n"
    with pytest.raises(SandboxError, match="git diff failed"):
        await busybox_sandbox.diff()
