"""Starting a real DockerSandbox on a host checkout for agent tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import docker

from sandbox.config import SandboxConfig
from sandbox.docker import DockerSandbox


@asynccontextmanager
async def docker_sandbox(
    client: docker.DockerClient, image: str, workspace: Path
) -> AsyncIterator[DockerSandbox]:
    sandbox = await DockerSandbox.start(
        client, SandboxConfig(image=image), workspace, labels={"qwen-fix.test": "agent"}
    )
    try:
        yield sandbox
    finally:
        await sandbox.close()
