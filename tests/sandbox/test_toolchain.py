"""The default image is a development image: the toolchains repositories' tests need run in a
locked-down sandbox, and test detection offers only the commands whose tool the image has."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import docker
import pytest

from sandbox.config import SandboxConfig
from sandbox.docker import DockerSandbox
from tests.sandbox.conftest import TEST_LABELS
from workers.test_command import candidate_commands, choose_in_sandbox

pytestmark = pytest.mark.docker

TOOLS = ("make", "python", "python3", "pip", "gcc", "g++", "cc", "node", "npm", "git")


@pytest.fixture
async def dev_sandbox(
    docker_client: docker.DockerClient, sandbox_image: str, checkout: Path
) -> AsyncIterator[DockerSandbox]:
    # Room for compilers and node, still with the sandbox's lock-down.
    config = SandboxConfig(image=sandbox_image, memory="1g", pids=256, lifetime=300)
    box = await DockerSandbox.start(docker_client, config, checkout, labels=TEST_LABELS)
    yield box
    await box.close()


async def test_the_default_image_has_the_usual_tools(dev_sandbox: DockerSandbox) -> None:
    found = await dev_sandbox.run(" && ".join(f"command -v {tool}" for tool in TOOLS))
    assert found.ok, found.output
    versions = await dev_sandbox.run("python --version && node --version && npm --version")
    assert versions.ok and versions.output.startswith("Python 3."), versions.output


async def test_python_makes_a_virtual_environment_with_pip(dev_sandbox: DockerSandbox) -> None:
    result = await dev_sandbox.run("python3 -m venv .venv && .venv/bin/python -m pip --version")
    assert result.ok, result.output
    assert "/workspace/.venv/" in result.output


async def test_make_builds_and_runs_a_c_program(dev_sandbox: DockerSandbox) -> None:
    await dev_sandbox.write_file(
        "hello.c", b'#include <stdio.h>\nint main(void) { puts("hi from C"); }\n'
    )
    result = await dev_sandbox.run("make -s hello && ./hello")
    assert result.ok, result.output
    assert result.output.endswith("hi from C\n")


async def test_npm_runs_a_packages_test_script_offline(dev_sandbox: DockerSandbox) -> None:
    package = {"name": "calc", "version": "1.0.0", "scripts": {"test": "node test.js"}}
    await dev_sandbox.write_file("package.json", json.dumps(package).encode())
    await dev_sandbox.write_file("test.js", b'console.log("node says " + (2 + 3));\n')
    result = await dev_sandbox.run("npm test", timeout=60)
    assert result.ok, result.output
    assert "node says 5" in result.output
    assert "update" not in result.output.lower() and "fund" not in result.output.lower()


FILES = {
    "Makefile": "test:\n\tpython -m pytest -q\n",
    "Cargo.toml": "[package]\n",
    "go.mod": "module calc\n",
    "test_calc.py": "",
}


async def test_detection_offers_the_first_command_the_image_can_run(
    dev_sandbox: DockerSandbox,
) -> None:
    candidates = candidate_commands(list(FILES), FILES.__getitem__)
    choice = await choose_in_sandbox(dev_sandbox, candidates)
    assert (choice.command, choice.missing) == ("make test", ())
    without_make = [c for c in candidates if c.command != "make test"]
    choice = await choose_in_sandbox(dev_sandbox, without_make)
    assert choice.command == "python3 -m pytest -q"
    assert [c.command for c in choice.missing] == ["cargo test", "go test ./..."]


async def test_an_image_without_the_tools_gets_no_test_command(
    docker_client: docker.DockerClient, busybox_image: str, checkout: Path
) -> None:
    config = SandboxConfig(image=busybox_image, memory="128m", pids=32, lifetime=120)
    box = await DockerSandbox.start(docker_client, config, checkout, labels=TEST_LABELS)
    try:
        choice = await choose_in_sandbox(box, candidate_commands(list(FILES), FILES.__getitem__))
    finally:
        await box.close()
    assert choice.command is None
    assert "`make test` skipped: no make in the image" in choice.summary()
    assert "set `test:` in .github/qwen-fix.yml" in choice.summary()
