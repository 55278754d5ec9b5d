"""Session fixtures for the real parts the suites stand on: Redis, the Docker engine, the image."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import docker
import pytest

from tests.model_server import ScriptedModelServer, ServerConfig, Turn


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.02)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout} s")


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A private redis-server for this test session, on a free loopback port."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail("redis-server is not installed; run `bash scripts/bootstrap` (see README)")
    port = free_port()
    directory: Path = tmp_path_factory.mktemp("redis")
    process = subprocess.Popen(
        [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(directory),
            "--save",
            "",
            "--appendonly",
            "no",
        ],
        stdout=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port)
        yield f"redis://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture(scope="session")
def docker_client() -> Iterator[docker.DockerClient]:
    try:
        client = docker.from_env(timeout=30)
        client.ping()
    except Exception as exc:
        pytest.fail(f"no Docker engine answers ({exc}); run `bash scripts/bootstrap` (see README)")
    yield client
    client.close()


@pytest.fixture(scope="session")
def sandbox_image(docker_client: docker.DockerClient) -> str:
    from sandbox.image import ensure_image

    return ensure_image(docker_client)


@pytest.fixture
def scripted_server() -> Iterator[Callable[..., ScriptedModelServer]]:
    """Start scripted model servers for a test; all are stopped after it."""
    started: list[ScriptedModelServer] = []

    def start(
        script: list[Turn], mode: str | None = None, config: ServerConfig | None = None
    ) -> ScriptedModelServer:
        server = ScriptedModelServer(script, mode=mode, config=config)  # type: ignore[arg-type]
        started.append(server.start())
        return server

    yield start
    for server in started:
        server.stop()


DOCKER_FIXTURES = frozenset({"docker_client", "sandbox_image", "make_harness"})
"""A test using one of these needs the Docker engine: it is marked `docker` whatever its file
says, so `.ci/run` can run the tests that are not beside the ones that are."""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if DOCKER_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.docker)
