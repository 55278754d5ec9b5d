"""What a sandbox may not do: network, root, writing the image, seeing secrets, hogging."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import docker
import pytest

from sandbox.config import SandboxConfig
from sandbox.docker import DockerSandbox, sandbox_environment
from tests.sandbox.conftest import TEST_LABELS

CONNECT = """
import errno, socket
for host, port in (("127.0.0.1", 80), ("192.0.2.1", 443)):
    s = socket.socket()
    s.settimeout(2)
    try:
        s.connect((host, port))
        print(host, "CONNECTED")
    except OSError as exc:
        print(host, errno.errorcode.get(exc.errno, exc.errno))
"""


async def test_no_network_but_loopback(sandbox: DockerSandbox) -> None:
    interfaces = await sandbox.run("ls /sys/class/net")
    assert interfaces.output.split() == ["lo"]
    routes = await sandbox.run("tail -n +2 /proc/net/route | wc -l")
    assert routes.output.strip() == "0"
    await sandbox.write_file("/tmp/connect.py", CONNECT.encode())
    result = await sandbox.run("python3 /tmp/connect.py")
    assert "CONNECTED" not in result.output
    assert "127.0.0.1 ECONNREFUSED" in result.output
    assert "192.0.2.1 ENETUNREACH" in result.output


async def test_runs_as_uid_1000_without_capabilities(sandbox: DockerSandbox) -> None:
    assert (await sandbox.run("id -u; id -g")).output == "1000\n1000\n"
    status = await sandbox.run("grep -E '^(CapEff|CapBnd|NoNewPrivs)' /proc/self/status")
    assert "CapEff:\t0000000000000000" in status.output
    assert "CapBnd:\t0000000000000000" in status.output
    assert "NoNewPrivs:\t1" in status.output


async def test_root_filesystem_is_read_only(sandbox: DockerSandbox) -> None:
    result = await sandbox.run("touch /usr/local/bin/x")
    assert not result.ok and "Read-only file system" in result.output
    writable = await sandbox.run('touch /tmp/x "$HOME/x" /workspace/x && echo ok')
    assert writable.output == "ok\n"


async def test_no_worker_secrets_in_the_environment(
    docker_client: docker.DockerClient,
    small_config: SandboxConfig,
    checkout: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("GITHUB_TOKEN", "ghs_secret_value")
    monkeypatch.setenv("PRIVATE_KEY", "-----BEGIN")
    box = await DockerSandbox.start(docker_client, small_config, checkout, labels=TEST_LABELS)
    try:
        listing = await box.run("env")
    finally:
        await box.close()
    names = {line.split("=", 1)[0] for line in listing.output.splitlines() if "=" in line}
    assert "secret" not in listing.output and "BEGIN" not in listing.output
    assert names <= {*sandbox_environment(small_config), "HOSTNAME", "PWD", "OLDPWD", "SHLVL"}
    assert "GITHUB_TOKEN" in os.environ  # the host had it; the sandbox did not


async def test_memory_hog_is_killed_and_the_sandbox_still_works(sandbox: DockerSandbox) -> None:
    hog = await sandbox.run(
        "python3 -c 'x = bytearray(1024 * 1024 * 1024); print(len(x))'", timeout=60
    )
    assert not hog.ok and not hog.timed_out
    assert (await sandbox.run("echo alive")).output == "alive\n"


async def test_fork_bomb_is_contained_and_the_sandbox_still_works(sandbox: DockerSandbox) -> None:
    bomb = await sandbox.run("bomb() { bomb | bomb & }; bomb; sleep 60", timeout=3)
    assert bomb.timed_out
    # The killed group is reaped by docker-init within moments; the shell answers at once.
    counts = []
    for _ in range(50):
        after = await sandbox.run("echo alive; ps -e --no-headers | wc -l")
        lines = after.output.split()
        assert lines[0] == "alive"
        counts.append(int(lines[1]))
        if counts[-1] < 10:
            break
        await asyncio.sleep(0.1)
    assert counts[-1] < 10, counts
