"""Fixtures over the real Docker engine: a client, the sandbox image, a busybox image, sandboxes."""

from __future__ import annotations

import shutil
import subprocess
import tarfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import docker
import pytest

from sandbox.config import SandboxConfig
from sandbox.docker import DockerSandbox
from sandbox.image import ensure_image

BUSYBOX_TAG = "qwen-fix-test-busybox:2"
TEST_LABELS = {"qwen-fix.test": "pytest"}


@pytest.fixture(scope="session")
def docker_client() -> Iterator[docker.DockerClient]:
    try:
        client = docker.from_env()
        client.ping()
    except docker.errors.DockerException as exc:
        pytest.fail(
            f"the Docker engine is not reachable ({exc}); start dockerd (see ENVIRONMENT.md)",
            pytrace=False,
        )
    yield client
    client.close()


@pytest.fixture(scope="session")
def sandbox_image(docker_client: docker.DockerClient) -> str:
    return ensure_image(docker_client)


@pytest.fixture(scope="session")
def busybox_image(
    docker_client: docker.DockerClient, tmp_path_factory: pytest.TempPathFactory
) -> str:
    """An image whose only shell is busybox sh: no bash, no python, no git."""
    try:
        docker_client.images.get(BUSYBOX_TAG)
        return BUSYBOX_TAG
    except docker.errors.ImageNotFound:
        pass
    busybox = shutil.which("busybox")
    if busybox is None:
        pytest.fail("busybox is missing: `apt-get install -y busybox-static`", pytrace=False)
    rootfs = tmp_path_factory.mktemp("busybox-rootfs")
    (rootfs / "bin").mkdir()
    shutil.copy(busybox, rootfs / "bin" / "busybox")
    applets = subprocess.run([busybox, "--list"], capture_output=True, text=True, check=True)
    for applet in applets.stdout.split():
        if applet != "busybox":
            (rootfs / "bin" / applet).symlink_to("busybox")
    for directory in ("tmp", "workspace", "etc", "proc", "sys", "dev"):
        (rootfs / directory).mkdir(exist_ok=True)
    # docker copies the image's /tmp mode onto the tmpfs mounted over it.
    (rootfs / "tmp").chmod(0o1777)
    (rootfs / "etc" / "passwd").write_text(
        "root:x:0:0::/root:/bin/sh\nsandbox:x:1000:1000::/tmp:/bin/sh\n"
    )
    archive = tmp_path_factory.mktemp("busybox-tar") / "rootfs.tar"
    with tarfile.open(archive, "w") as tar:
        tar.add(rootfs, arcname=".")
    docker_client.api.import_image_from_file(
        str(archive), repository=BUSYBOX_TAG.split(":")[0], tag=BUSYBOX_TAG.split(":")[1]
    )
    return BUSYBOX_TAG


def make_checkout(root: Path) -> Path:
    """A git checkout with one commit: a text file, an executable script, a binary file."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "README.md").write_text("hello\n")
    (root / "run.sh").write_text("#!/bin/sh\necho run\n")
    (root / "run.sh").chmod(0o755)
    (root / "blob.bin").write_bytes(bytes(range(256)) * 4)
    (root / ".gitignore").write_text("ignored/\n")
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", "-C", str(root)]
    subprocess.run([*git, "init", "-q", "-b", "main"], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "base"], check=True)
    return root


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    return make_checkout(tmp_path / "checkout")


@pytest.fixture
def small_config(sandbox_image: str) -> SandboxConfig:
    """Tight limits so that hogs and bombs hit them quickly."""
    return SandboxConfig(image=sandbox_image, memory="256m", cpus=1.0, pids=64, lifetime=300)


@pytest.fixture
async def sandbox(
    docker_client: docker.DockerClient, small_config: SandboxConfig, checkout: Path
) -> AsyncIterator[DockerSandbox]:
    box = await DockerSandbox.start(docker_client, small_config, checkout, labels=TEST_LABELS)
    yield box
    await box.close()
