"""Getting the job's image onto the real engine: a present image is used as it is, a missing one
is pulled (here, where no registry is reachable, that fails clearly), and a dev container is
built from the default branch's files once per content."""

from __future__ import annotations

import contextlib
import re
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from sandbox.config import STANDARD_PATH, SandboxConfig
from workers.git import GitAuth
from workers.sandbox_image import SandboxImageError, prepare_image, with_image_path
from workers.workspace import Checkout

pytestmark = pytest.mark.docker

ABSENT = "registry.invalid/octo-org/ci:1"


def make_checkout(root: Path, files: dict[str, str]) -> Checkout:
    """A repository with one commit of `files`, standing in for a job's mirror."""
    repo = root / "mirror"
    repo.mkdir(parents=True)
    for name, text in files.items():
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        (repo / name).write_text(text)
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", "-C", str(repo)]
    subprocess.run([*git, "init", "-q", "-b", "main"], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "base"], check=True)
    head = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True, check=True)
    commit = head.stdout.strip()
    return Checkout("octo-org/calc", "", "main", commit, commit, repo, GitAuth("x"), root / "job")


class Announced(list[str]):
    async def __call__(self, line: str) -> None:
        self.append(line)


@pytest.fixture
def built_images(docker_client: docker.DockerClient) -> Iterator[list[str]]:
    """Tags of dev container images a test built; removed after it."""
    tags: list[str] = []
    yield tags
    for tag in tags:
        with contextlib.suppress(docker.errors.ImageNotFound):
            docker_client.images.remove(tag, force=True)


async def test_a_present_image_is_used_without_a_pull(
    docker_client: docker.DockerClient, sandbox_image: str, tmp_path: Path
) -> None:
    # The image exists only on this engine: a pull of its name could not succeed.
    found = make_checkout(tmp_path, {".github/qwen-fix.yml": f"image: {sandbox_image}\n"})
    announced = Announced()
    image = await prepare_image(docker_client, found, sandbox_image, "x:1", announce=announced)
    assert image.name == sandbox_image
    assert image.summary == f"sandbox: `{sandbox_image}` — from `image:` in .github/qwen-fix.yml"
    assert announced == []


async def test_an_image_that_cannot_be_pulled_fails_with_the_engines_reason(
    docker_client: docker.DockerClient, sandbox_image: str, tmp_path: Path
) -> None:
    found = make_checkout(tmp_path, {"README.md": "hi\n"})
    announced = Announced()
    with pytest.raises(SandboxImageError) as caught:
        await prepare_image(docker_client, found, ABSENT, sandbox_image, announce=announced)
    message = str(caught.value)
    assert message.startswith(f"could not pull {ABSENT}: ")
    assert "registry.invalid" in message.removeprefix(f"could not pull {ABSENT}: ")
    assert message.endswith(
        "; push it to a registry the worker can reach, or build it on the worker, "
        "or remove `image:`"
    )
    assert announced == [f"sandbox: pulling `{ABSENT}` — from `image:` in .github/qwen-fix.yml"]


async def test_a_dev_container_image_that_cannot_be_pulled_says_how_to_do_without(
    docker_client: docker.DockerClient, sandbox_image: str, tmp_path: Path
) -> None:
    devcontainer = f'{{"image": "{ABSENT}", // pinned\n}}'
    found = make_checkout(tmp_path, {".devcontainer.json": devcontainer})
    with pytest.raises(
        SandboxImageError, match=re.escape("or set `image:` in .github/qwen-fix.yml")
    ):
        await prepare_image(docker_client, found, None, sandbox_image)


async def test_a_dev_container_is_built_from_the_default_branch_once_per_content(
    docker_client: docker.DockerClient,
    sandbox_image: str,
    tmp_path: Path,
    built_images: list[str],
) -> None:
    nonce = uuid.uuid4().hex  # a context of its own, so no earlier run's image is reused
    files = {
        ".devcontainer/devcontainer.json": (
            '{\n  // the tools of this repository\n  "build": {"dockerfile": "Dockerfile",'
            ' "context": "..", "args": {"GREETING": "hello"},},\n}\n'
        ),
        ".devcontainer/Dockerfile": (
            f"FROM {sandbox_image}\nARG GREETING\nCOPY marker.txt /etc/devcontainer-marker\n"
            'USER root\nRUN echo "$GREETING" >> /etc/devcontainer-marker\nUSER 1000:1000\n'
        ),
        "marker.txt": f"built from the dev container {nonce}\n",
    }
    found = make_checkout(tmp_path, files)
    announced = Announced()
    image = await prepare_image(docker_client, found, None, "x:1", announce=announced)
    built_images.append(image.name)
    assert image.name.startswith("qwen-fix-devcontainer:")
    assert image.summary == (
        f"sandbox: `{image.name}` — built from .devcontainer/Dockerfile"
        " (.devcontainer/devcontainer.json)"
    )
    assert announced == [image.summary.replace("sandbox: `", "sandbox: building `", 1)]
    marker = docker_client.containers.run(
        image.name, ["cat", "/etc/devcontainer-marker"], remove=True, network_mode="none"
    )
    assert marker.decode() == f"built from the dev container {nonce}\nhello\n"
    labels = docker_client.images.get(image.name).labels
    assert labels["qwen-fix.devcontainer"] == "octo-org/calc"
    assert not (found.job_dir / "devcontainer").exists()

    again = await prepare_image(docker_client, found, None, "x:1", announce=announced)
    assert again == image
    assert len(announced) == 1  # the second job found the image of the same content


async def test_a_dockerfile_outside_its_context_is_built_too(
    docker_client: docker.DockerClient,
    sandbox_image: str,
    tmp_path: Path,
    built_images: list[str],
) -> None:
    files = {
        ".devcontainer.json": (
            '{"build": {"dockerfile": "docker/dev.Dockerfile", "context": "app"}}'
        ),
        "docker/dev.Dockerfile": f"FROM {sandbox_image}\nCOPY tool.txt /etc/tool.txt\n",
        "app/tool.txt": f"{uuid.uuid4().hex}\n",
    }
    found = make_checkout(tmp_path, files)
    image = await prepare_image(docker_client, found, None, "x:1")
    built_images.append(image.name)
    tool = docker_client.containers.run(image.name, ["cat", "/etc/tool.txt"], remove=True)
    assert tool.decode() == files["app/tool.txt"]


async def test_a_failing_build_fails_the_job_with_its_log(
    docker_client: docker.DockerClient, sandbox_image: str, tmp_path: Path
) -> None:
    files = {
        ".devcontainer/devcontainer.json": '{"build": {"dockerfile": "Dockerfile"}}',
        ".devcontainer/Dockerfile": (
            f"FROM {sandbox_image}\nRUN echo compiling {uuid.uuid4().hex} && exit 7\n"
        ),
    }
    found = make_checkout(tmp_path, files)
    with pytest.raises(SandboxImageError) as caught:
        await prepare_image(docker_client, found, None, "x:1")
    message = str(caught.value)
    assert message.startswith(
        "could not build the dev container image from .devcontainer/Dockerfile"
    )
    assert "returned a non-zero code: 7" in message
    assert "compiling" in message
    assert message.endswith(
        "To go on: fix the Dockerfile on the default branch, or set `image:` in "
        ".github/qwen-fix.yml."
    )


async def test_an_invalid_dev_container_stops_the_run_with_the_line(
    docker_client: docker.DockerClient, sandbox_image: str, tmp_path: Path
) -> None:
    found = make_checkout(tmp_path, {".devcontainer/devcontainer.json": '{\n  "image": node\n}'})
    with pytest.raises(SandboxImageError, match=re.escape("devcontainer.json line 2, column 12")):
        await prepare_image(docker_client, found, None, sandbox_image)
    configured = await prepare_image(docker_client, found, sandbox_image, "x:1")
    assert configured.name == sandbox_image  # `image:` wins without reading the dev container


def test_the_workers_default_config_takes_its_images_path(
    docker_client: docker.DockerClient, sandbox_image: str
) -> None:
    config = SandboxConfig(image=sandbox_image, search_path="/stale")
    assert with_image_path(docker_client, config).search_path == STANDARD_PATH
    absent = SandboxConfig(image=ABSENT, search_path="/stale")
    assert with_image_path(docker_client, absent) == absent
