"""The warm pool: pre-started sandboxes that take a checkout after they started."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

import docker
import pytest

from sandbox.config import SandboxConfig
from sandbox.labels import container_name, job_name_filter
from sandbox.pool import POOL_LABEL, SandboxPool
from tests.sandbox.conftest import TEST_LABELS, make_checkout


def containers(client: docker.DockerClient, pool_id: str) -> list[str]:
    # Listing entries: `containers.list` inspects each one afterwards and fails on a container
    # the pool removes in between.
    found = client.api.containers(all=True, filters={"label": f"test.pool={pool_id}"})
    return [c["Id"] for c in found]


@pytest.fixture
async def pool(
    docker_client: docker.DockerClient, small_config: SandboxConfig, tmp_path: Path
) -> SandboxPool:
    labels = {**TEST_LABELS, "test.pool": tmp_path.name}
    pool = SandboxPool(docker_client, small_config, size=2, root=tmp_path / "pool", labels=labels)
    await pool.wait_filled()
    yield pool  # type: ignore[misc]
    await pool.close()


async def test_a_pooled_sandbox_takes_a_checkout_made_after_it_started(
    pool: SandboxPool, docker_client: docker.DockerClient, tmp_path: Path
) -> None:
    assert pool.idle == 2
    slot = await pool.take()
    source = make_checkout(tmp_path / "source")
    clone = ["git", "clone", "-q", str(source), str(slot.workspace_dir)]
    await asyncio.to_thread(subprocess.run, clone, check=True)
    name = container_name("test-job:a/b#1")
    sandbox = await slot.ready(name)
    try:
        listing = await sandbox.run("ls && id -u && git log --format=%s")
        assert listing.ok, listing.output
        assert "README.md" in listing.output and "1000" in listing.output
        assert "base" in listing.output
        await sandbox.write_file("README.md", b"changed\n")
        await sandbox.run("echo new > added.txt")
        diff = await sandbox.diff()
        assert "-hello\n+changed" in diff
        assert "added.txt" in diff
        labels = docker_client.containers.get(sandbox.container_id).labels
        assert labels[POOL_LABEL] == "1"
        # The job is in the name it was given when the job took it.
        found = docker_client.containers.list(filters={"name": job_name_filter("test-job:a/b#1")})
        assert [c.id for c in found] == [sandbox.container_id] and found[0].name == name
    finally:
        await slot.discard()
    await pool.wait_filled()
    assert pool.idle == 2


async def test_an_empty_pool_starts_a_sandbox_on_the_spot(
    docker_client: docker.DockerClient, small_config: SandboxConfig, tmp_path: Path
) -> None:
    labels = {**TEST_LABELS, "test.pool": tmp_path.name}
    pool = SandboxPool(docker_client, small_config, size=0, root=tmp_path / "p", labels=labels)
    slot = await pool.take()
    try:
        assert (await slot.sandbox.run("pwd")).output.strip() == small_config.workspace
    finally:
        await slot.discard()
        await pool.close()
    assert containers(docker_client, tmp_path.name) == []


async def test_stale_slots_are_replaced_and_close_removes_the_rest(
    docker_client: docker.DockerClient, small_config: SandboxConfig, tmp_path: Path
) -> None:
    labels = {**TEST_LABELS, "test.pool": tmp_path.name}
    pool = SandboxPool(
        docker_client, small_config, size=1, root=tmp_path / "p", labels=labels, idle_limit=0.2
    )
    await pool.wait_filled()
    (stale,) = containers(docker_client, tmp_path.name)
    await asyncio.sleep(0.3)
    slot = await pool.take()
    assert slot.sandbox.container_id != stale
    await slot.discard()
    await pool.wait_filled()
    for _ in range(50):
        if stale not in containers(docker_client, tmp_path.name):
            break
        await asyncio.sleep(0.1)
    assert stale not in containers(docker_client, tmp_path.name)
    await pool.close()
    for _ in range(50):
        if not containers(docker_client, tmp_path.name):
            break
        await asyncio.sleep(0.1)
    assert containers(docker_client, tmp_path.name) == []
