"""Measures the anchors (mini-swe-agent, SWE-ReX) in their own venv and prints JSON samples.

Run by `benchmarks.sandbox_bench` with the python that `setup.sh` prints; never imported by
our code. Every sample is in seconds. An anchor that cannot run reports `{"error": why}`.

Both anchors' containers run with `--network none`. SWE-ReX's client talks HTTP to
127.0.0.1 on the port it publishes, and publishing does nothing without a network, so the
client thread enters the container's own network namespace (setns) once `docker run` has
started it and reaches `swerex-remote` on the container's loopback: the same HTTP exchange,
no bridge, nothing reachable outside the container.

    python measure.py --image TAG --swerex-image TAG [--starts 5] [--commands 100]
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import http.client
import json
import os
import socket
import subprocess
import time
import traceback
from collections.abc import Callable
from typing import Any

CLONE_NEWNET = 0x40000000
SWEREX_PORT = 8000
"""swerex-remote's default port; DockerDeployment starts it without `--port`."""
DOCKER_SOCKET = "/var/run/docker.sock"


def guarded(measure: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """Run one anchor's measurement; any failure becomes the reason printed instead of numbers."""
    try:
        return measure()
    except Exception as exc:
        return {"error": f"{type(exc).__name__}: {exc}", "trace": traceback.format_exc()[-1500:]}


# --- mini-swe-agent: `docker run -d … sleep`, then one `docker exec bash -lc` per command ---


def measure_mini_swe_agent(image: str, starts: int, commands: int) -> dict[str, Any]:
    from minisweagent.environments.docker import DockerEnvironment

    def start() -> DockerEnvironment:
        return DockerEnvironment(
            image=image, cwd="/workspace", run_args=["--rm", "--network", "none"]
        )

    start_samples, environments = [], []
    for _ in range(starts):
        began = time.perf_counter()
        environments.append(start())
        start_samples.append(time.perf_counter() - began)
    environment = environments[0]
    try:
        echo_samples = []
        for _ in range(commands):
            began = time.perf_counter()
            result = environment.execute({"command": "echo hi"})
            echo_samples.append(time.perf_counter() - began)
            if result["output"] != "hi\n":
                raise RuntimeError(f"mini-swe-agent echo answered {result!r}")
    finally:
        for each in environments:
            remove_container(each.container_id)
            each.container_id = None  # its own cleanup would `docker stop` in the background
    return {"start": start_samples, "echo": echo_samples}


def remove_container(container_id: str | None) -> None:
    if container_id:
        subprocess.run(["docker", "rm", "-f", container_id], capture_output=True, check=False)


# --- SWE-ReX: `docker run swerex-remote`, HTTP to it; a pexpect bash session per sandbox ---


class NetworkNamespace:
    """setns(2) for the calling thread: the asyncio thread that opens SWE-ReX's HTTP sockets."""

    def __init__(self) -> None:
        self._libc = ctypes.CDLL(None, use_errno=True)
        self._home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)

    def enter_container(self, name: str, timeout: float = 30.0) -> None:
        pid = wait_for_pid(name, timeout)
        descriptor = os.open(f"/proc/{pid}/ns/net", os.O_RDONLY)
        try:
            self._setns(descriptor)
        finally:
            os.close(descriptor)

    def leave(self) -> None:
        self._setns(self._home)

    def _setns(self, descriptor: int) -> None:
        if self._libc.setns(descriptor, CLONE_NEWNET) != 0:
            errno = ctypes.get_errno()
            raise OSError(errno, f"setns: {os.strerror(errno)}")


class _UnixHTTPConnection(http.client.HTTPConnection):
    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(DOCKER_SOCKET)


def wait_for_pid(name: str, timeout: float) -> int:
    """The host pid of a container's first process, polled over the engine's unix socket."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        connection = _UnixHTTPConnection("localhost")
        connection.request("GET", f"/containers/{name}/json")
        response = connection.getresponse()
        body = response.read()
        connection.close()
        if response.status == 200:
            pid = int(json.loads(body)["State"]["Pid"])
            if pid:
                return pid
        time.sleep(0.005)
    raise TimeoutError(f"container {name} did not start within {timeout} s")


def measure_swe_rex(image: str, starts: int, commands: int) -> dict[str, Any]:
    return asyncio.run(_measure_swe_rex(image, starts, commands))


async def _measure_swe_rex(image: str, starts: int, commands: int) -> dict[str, Any]:
    from swerex.deployment.docker import DockerDeployment
    from swerex.deployment.hooks.abstract import DeploymentHook
    from swerex.runtime.abstract import BashAction, Command, CreateBashSessionRequest

    namespace = NetworkNamespace()

    class EnterContainerNetwork(DeploymentHook):
        def __init__(self, deployment: DockerDeployment) -> None:
            self.deployment = deployment

        def on_custom_step(self, message: str) -> None:
            if message == "Starting runtime":  # right after its `docker run` was spawned
                assert self.deployment.container_name is not None
                namespace.enter_container(self.deployment.container_name)

    async def start() -> DockerDeployment:
        deployment = DockerDeployment(
            image=image,
            port=SWEREX_PORT,
            pull="never",
            docker_args=["--network", "none"],
            startup_timeout=60.0,
        )
        deployment.add_hook(EnterContainerNetwork(deployment))
        await deployment.start()
        return deployment

    start_samples: list[float] = []
    session_samples: list[float] = []
    execute_samples: list[float] = []
    for index in range(starts):
        began = time.perf_counter()
        deployment = await start()
        start_samples.append(time.perf_counter() - began)
        try:
            if index == 0:
                runtime = deployment.runtime
                await runtime.create_session(CreateBashSessionRequest())
                for _ in range(commands):
                    began = time.perf_counter()
                    observation = await runtime.run_in_session(BashAction(command="echo hi"))
                    session_samples.append(time.perf_counter() - began)
                    if observation.output.strip() != "hi":
                        raise RuntimeError(f"SWE-ReX session answered {observation!r}")
                for _ in range(commands):
                    began = time.perf_counter()
                    response = await runtime.execute(Command(command="echo hi", shell=True))
                    execute_samples.append(time.perf_counter() - began)
                    if response.stdout != "hi\n":
                        raise RuntimeError(f"SWE-ReX execute answered {response!r}")
        finally:
            await deployment.stop()
            namespace.leave()
    return {
        "start": start_samples,
        "session_echo": session_samples,
        "execute_echo": execute_samples,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image", required=True, help="our sandbox image (mini-swe-agent runs it)")
    parser.add_argument("--swerex-image", required=True, help="our image with swerex-remote added")
    parser.add_argument("--starts", type=int, default=5)
    parser.add_argument("--commands", type=int, default=100)
    arguments = parser.parse_args()
    # The anchors log to stdout; keep stdout for the JSON alone.
    json_out = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    results = {
        "mini_swe_agent": guarded(
            lambda: measure_mini_swe_agent(arguments.image, arguments.starts, arguments.commands)
        ),
        "swe_rex": guarded(
            lambda: measure_swe_rex(arguments.swerex_image, arguments.starts, arguments.commands)
        ),
    }
    json_out.write(json.dumps(results) + "\n")
    json_out.close()


if __name__ == "__main__":
    main()
