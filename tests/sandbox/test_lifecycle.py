"""Start, shell restart, close, lifetime and orphan reaping over the real engine."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from pathlib import Path

import docker
import pytest

from sandbox import labels
from sandbox.config import SandboxConfig
from sandbox.docker import (
    RUN_DIR_PREFIX,
    DockerSandbox,
    SandboxError,
    _create_container_in,
    _NetworkAttached,
)
from sandbox.reaper import reap_directories, reap_orphans
from tests.sandbox.conftest import TEST_LABELS


def sandbox_containers(client: docker.DockerClient, **label_values: str) -> list[str]:
    wanted = [f"{labels.SANDBOX}=1", *(f"{k}={v}" for k, v in label_values.items())]
    return [c["Id"] for c in client.api.containers(all=True, filters={"label": wanted})]


async def test_container_is_labelled_and_limited(
    docker_client: docker.DockerClient, sandbox: DockerSandbox
) -> None:
    info = docker_client.api.inspect_container(sandbox.container_id)
    host = info["HostConfig"]
    assert info["Config"]["Labels"][labels.SANDBOX] == "1"
    assert info["Config"]["Labels"]["qwen-fix.test"] == "pytest"
    assert float(info["Config"]["Labels"][labels.EXPIRES_AT]) > time.time()
    # With no bridge on the engine the default mode is as network-less as `none`, and faster.
    bridgeless = not docker_client.api.networks(filters={"driver": "bridge"})
    assert host["NetworkMode"] == ("default" if bridgeless else "none")
    assert all(
        not network["EndpointID"] for network in info["NetworkSettings"]["Networks"].values()
    )
    assert host["ReadonlyRootfs"] is True
    assert host["CapDrop"] == ["ALL"] and "no-new-privileges" in host["SecurityOpt"]
    assert (host["Memory"], host["PidsLimit"], host["NanoCpus"]) == (256 * 2**20, 64, 10**9)


async def test_close_removes_the_container_and_is_idempotent(
    docker_client: docker.DockerClient, small_config: SandboxConfig, checkout: Path
) -> None:
    box = await DockerSandbox.start(docker_client, small_config, checkout, labels=TEST_LABELS)
    await box.close()
    await box.close()
    with pytest.raises(docker.errors.NotFound):
        docker_client.api.inspect_container(box.container_id)
    with pytest.raises(SandboxError):
        await box.run("true")


async def test_a_dead_shell_is_restarted_and_says_so(sandbox: DockerSandbox) -> None:
    await sandbox.run("cd /tmp && export KEPT=1")
    # Kill the long-lived shell: the parent of this command's parent.
    await sandbox.run("kill -9 $(sed -n 's/^PPid:\\t//p' /proc/$PPID/status)")
    result = await sandbox.run('pwd; echo "$KEPT"')
    assert result.output.startswith("[sandbox: the shell had exited or was abandoned")
    assert result.output.endswith("/tmp\n1\n")
    assert (await sandbox.run("echo fine")).output == "fine\n"


async def test_a_cancelled_command_is_killed_and_the_next_one_runs(sandbox: DockerSandbox) -> None:
    await sandbox.run("export KEPT=2")
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.5):
            await sandbox.run("sleep 401", timeout=60)
    result = await sandbox.run('echo "$KEPT"; ps -eo args')
    assert result.ok and "\n2\n" in result.output
    assert "sleep 401" not in result.output


async def test_lifetime_ends_the_container_by_itself(
    docker_client: docker.DockerClient, small_config: SandboxConfig, checkout: Path
) -> None:
    config = small_config.model_copy(update={"lifetime": 1.0})
    box = await DockerSandbox.start(docker_client, config, checkout, labels=TEST_LABELS)
    try:
        for _ in range(50):
            try:
                state = docker_client.api.inspect_container(box.container_id)["State"]
            except docker.errors.NotFound:
                break
            if not state["Running"]:
                break
            await asyncio.sleep(0.1)
        else:
            pytest.fail("the container outlived its lifetime")
    finally:
        await box.close()


async def test_reap_removes_a_workers_leftovers(
    docker_client: docker.DockerClient, small_config: SandboxConfig, checkout: Path
) -> None:
    worker = {labels.WORKER: "pytest-worker-gone"}
    box = await DockerSandbox.start(docker_client, small_config, checkout, labels=worker)
    keep = await DockerSandbox.start(
        docker_client, small_config, checkout, labels={labels.WORKER: "pytest-worker-alive"}
    )
    try:
        assert reap_orphans(docker_client, worker_id="pytest-worker-gone") >= 1
        assert sandbox_containers(docker_client, **worker) == []
        assert sandbox_containers(docker_client, **{labels.WORKER: "pytest-worker-alive"})
    finally:
        await box.close()
        await keep.close()


async def test_reap_removes_expired_sandboxes(
    docker_client: docker.DockerClient, sandbox_image: str
) -> None:
    def leftover(expires_at: float) -> str:
        container_id: str = docker_client.api.create_container(
            sandbox_image,
            command=["sleep", "120"],
            labels={labels.SANDBOX: "1", labels.EXPIRES_AT: str(int(expires_at))},
            host_config=docker_client.api.create_host_config(network_mode="none"),
        )["Id"]
        docker_client.api.start(container_id)
        return container_id

    expired, current = leftover(time.time() - 10), leftover(time.time() + 600)
    try:
        # Only expired ones and this test's are candidates: other sandboxes on the
        # engine (other test runs) are running and unexpired, so they stay.
        assert reap_orphans(docker_client) >= 1
        remaining = set(sandbox_containers(docker_client))
        assert expired not in remaining
        assert current in remaining
    finally:
        for container_id in (expired, current):
            with contextlib.suppress(docker.errors.NotFound):
                docker_client.api.remove_container(container_id, force=True)


def test_a_container_given_a_network_is_removed_before_it_starts(
    docker_client: docker.DockerClient, sandbox_image: str, tmp_path: Path
) -> None:
    """The guard behind the default network mode: whatever mode is tried, a sandbox that was
    meant to have no network and got one never runs."""
    config = SandboxConfig(image=sandbox_image, network="none")
    before = set(sandbox_containers(docker_client))
    with pytest.raises(_NetworkAttached):
        _create_container_in(docker_client, config, tmp_path, TEST_LABELS, tmp_path, "host")
    assert set(sandbox_containers(docker_client)) == before


async def test_reap_removes_run_directories_no_sandbox_mounts(
    docker_client: docker.DockerClient, small_config: SandboxConfig, checkout: Path, tmp_path: Path
) -> None:
    scratch = tmp_path / "scratch"
    config = small_config.model_copy(update={"scratch_dir": scratch})
    box = await DockerSandbox.start(docker_client, config, checkout, labels=TEST_LABELS)
    try:
        old = time.time() - 3600
        left = scratch / f"{RUN_DIR_PREFIX}left"  # a dead worker's: unmounted and old
        fresh = scratch / f"{RUN_DIR_PREFIX}fresh"  # being made right now
        other = scratch / "not-a-run-dir"
        for directory in (left, fresh, other):
            (directory / "sub").mkdir(parents=True)
        for directory in (left, other, box.run_dir):
            os.utime(directory, (old, old))
        assert reap_directories(docker_client, scratch, f"{RUN_DIR_PREFIX}*") == 1
        assert not left.exists()
        assert fresh.exists() and other.exists() and box.run_dir.exists()
        assert (await box.run("echo still here")).output == "still here\n"
    finally:
        await box.close()
    assert reap_directories(docker_client, tmp_path / "missing", "*") == 0
