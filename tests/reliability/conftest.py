"""Fixtures of the fault suites: the end-to-end app, and a durable Redis a test may restart."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest

from tests.conftest import free_port, wait_for_port
from tests.e2e.conftest import make_harness  # noqa: F401  (the app, emulator and model server)
from tests.e2e.harness import Harness
from tests.model_server.script import Reply, Turn

T = TypeVar("T")


def as_root(argv: list[str]) -> subprocess.CompletedProcess[str]:
    """Run `argv` as root, as scripts/bootstrap does (directly when root, else `sudo -n`)."""
    prefix = [] if os.geteuid() == 0 else ["sudo", "-n"]
    return subprocess.run([*prefix, *argv], capture_output=True, text=True, check=False)


def until(h: Harness, what: str, check: Callable[[], T | None], timeout: float = 180.0) -> T:
    """`Harness.wait_for`, for tests where a job is meant to fail."""
    return h.wait_for(what, check, timeout, jobs_may_fail=True)


def failed_comment(body: str | None) -> str | None:
    """The tracking comment, once it says the job could not finish."""
    return body if body is not None and "Could not finish" in body else None


def slowed(turns: list[Turn], delays: dict[int, float]) -> list[Turn]:
    """The script with these turns (by index) answered after these many seconds."""
    return [
        Reply(str(turn), delay=delays[n]) if n in delays else turn for n, turn in enumerate(turns)
    ]


class DurableRedis:
    """A redis-server with an append-only file synced every second, as the deploy files run it,
    that a test can restart on the same port and files."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}"

    def start(self) -> DurableRedis:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.fail("redis-server is not installed; run `bash scripts/bootstrap` (see README)")
        self.process = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir",
             str(self.directory), "--appendonly", "yes", "--appendfsync", "everysec",
             "--save", ""],
            stdout=subprocess.DEVNULL,
        )  # fmt: skip
        wait_for_port(self.port, timeout=20)
        return self

    def restart(self, down: float = 0.0) -> None:
        """What `docker restart` and a rolling update do: SIGTERM (Redis writes out its
        append-only file), `down` seconds without Redis, then the same server on the same files."""
        self.stop()
        time.sleep(down)
        self.start()

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=30)
            self.process = None


@pytest.fixture
def durable_redis(tmp_path: Path) -> Iterator[DurableRedis]:
    directory = tmp_path / "redis"
    directory.mkdir()
    server = DurableRedis(directory).start()
    yield server
    server.stop()
