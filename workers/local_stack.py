"""`qwen-fix up`: the receiver and a worker as child processes on this host, with a local Redis
when REDIS_URL is unset; ready only when the receiver listens, and an orderly, quiet stop.

Each child runs in a session of its own, so Ctrl-C in the terminal reaches `up` alone, which
then stops them in order: the worker first (it stops taking jobs, cancels the running ones with
their tracking comments updated and removes their sandboxes), the receiver, and the local Redis
last, since the worker needs it until the end. SIGTERM does the same as Ctrl-C.
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from types import FrameType
from typing import TextIO

from bot.settings import Settings
from workers.preflight import SetupProblem

READY_TIMEOUT = 60.0
"""Seconds the receiver may take to listen."""
STOP_TIMEOUT = 120.0
"""Seconds the worker may take to stop its jobs, update their comments, remove sandboxes."""
REDIS_INSTALL_HINT = (
    "no REDIS_URL is set and no redis-server is on PATH: install Redis "
    "(Debian/Ubuntu: `apt-get install redis-server`) or set REDIS_URL=redis://HOST:PORT"
)


class Stop(Exception):
    """Ctrl-C or SIGTERM: stop in order."""


@dataclass
class LocalStack:
    settings: Settings
    env: dict[str, str]
    out: TextIO = sys.stderr
    redis: subprocess.Popen[bytes] | None = None
    children: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def run(self, warn_about_the_model: Callable[[], None]) -> int:
        """Start everything, wait until a child exits or a stop is asked; returns the exit code."""
        previous = {sig: signal.signal(sig, _stop) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            self.start()
            self.say(
                f"receiving webhooks on http://{self.settings.web_host}:"
                f"{self.settings.web_port}/webhooks/github (Ctrl-C stops)"
            )
            threading.Thread(target=warn_about_the_model, daemon=True).start()
            return self.wait()
        except Stop:
            return 0
        finally:
            # A second Ctrl-C must not cut the stop short.
            for sig in previous:
                signal.signal(sig, signal.SIG_IGN)
            try:
                self.stop()
            finally:
                for sig, handler in previous.items():
                    signal.signal(sig, handler)

    def start(self) -> None:
        if not self.settings.redis_url:
            self.redis, self.env["REDIS_URL"] = self.start_redis()
        for role in ("worker", "web"):
            self.children[role] = _spawn([sys.executable, "-m", "workers.cli", role], self.env)
        self.wait_until_listening()

    def start_redis(self) -> tuple[subprocess.Popen[bytes], str]:
        binary = shutil.which("redis-server")
        if binary is None:
            raise SetupProblem(REDIS_INSTALL_HINT)
        port = free_port()
        directory = self.settings.data_dir / "redis"
        directory.mkdir(parents=True, exist_ok=True)
        command = [binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(directory)]
        command += ["--appendonly", "yes", "--save", ""]
        process = _spawn(command, self.env, quiet=True)
        deadline = time.monotonic() + 10
        while not _listening("127.0.0.1", port):
            if process.poll() is not None:
                raise SetupProblem(f"redis-server exited with status {process.returncode} at start")
            if time.monotonic() > deadline:
                raise SetupProblem(f"redis-server did not listen on port {port} within 10 s")
            time.sleep(0.05)
        return process, f"redis://127.0.0.1:{port}"

    def wait_until_listening(self) -> None:
        host = "127.0.0.1" if self.settings.web_host in ("0.0.0.0", "::", "") else None
        deadline = time.monotonic() + READY_TIMEOUT
        while not _listening(host or self.settings.web_host, self.settings.web_port):
            for role, child in self.children.items():
                if child.poll() is not None:
                    raise SetupProblem(
                        f"the {role} exited with status {child.returncode} before it was ready "
                        "(its message is above)"
                    )
            if time.monotonic() > deadline:
                raise SetupProblem(
                    f"nothing listens on {self.settings.web_host}:{self.settings.web_port} after "
                    f"{READY_TIMEOUT:.0f} s: is WEB_PORT free?"
                )
            time.sleep(0.1)

    def wait(self) -> int:
        while True:
            for role, child in self.children.items():
                if child.poll() is not None:
                    self.say(f"the {role} exited with status {child.returncode}; stopping")
                    return child.returncode or 1
            time.sleep(0.3)

    def stop(self) -> None:
        """The worker, then the receiver, then the local Redis; each asked, then made to."""
        running = [c for c in self.children.values() if c.poll() is None]
        if running:
            self.say("stopping; running jobs stop, say so on GitHub, and run again later")
        for role in ("worker", "web"):
            child = self.children.get(role)
            if child is not None and child.poll() is None:
                child.send_signal(signal.SIGTERM)
        for child in self.children.values():
            _wait_or_kill(child, STOP_TIMEOUT)
        if self.redis is not None and self.redis.poll() is None:
            self.redis.send_signal(signal.SIGTERM)
            _wait_or_kill(self.redis, 30)
        if running:
            self.say("stopped.")

    def say(self, text: str) -> None:
        print(f"qwen-fix: {text}", file=self.out, flush=True)


def _stop(signum: int, frame: FrameType | None) -> None:
    raise Stop()


def _spawn(
    command: list[str], env: dict[str, str], *, quiet: bool = False
) -> subprocess.Popen[bytes]:
    # A session of its own: the terminal's Ctrl-C goes to `up` only, which stops them in order.
    return subprocess.Popen(
        command,
        env=env,
        start_new_session=True,
        stdout=subprocess.DEVNULL if quiet else None,
    )


def _wait_or_kill(process: subprocess.Popen[bytes], timeout: float) -> None:
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


def _listening(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex((host, port)) == 0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port
