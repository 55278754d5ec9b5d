"""The `qwen-fix` command. It lives in workers/ because it wires every package together."""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence

from bot.log import configure_logging
from bot.settings import Settings, SettingsError, load_settings

REDIS_INSTALL_HINT = (
    "no REDIS_URL is set and no redis-server is on PATH: install Redis "
    "(Debian/Ubuntu: `apt-get install redis-server`) or set REDIS_URL=redis://HOST:PORT"
)
DOCKER_HINT = (
    "no Docker engine answers ({error}). Start one (`systemctl start docker`, or "
    "`dockerd >/var/log/dockerd.log 2>&1 &`) or point DOCKER_HOST at one"
)


class CliError(Exception):
    """A problem the user can fix; printed without a traceback."""


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    configure_logging(os.environ.get("LOG_LEVEL", "INFO"))
    try:
        code: int = args.run(args)
        return code
    except (SettingsError, CliError) as exc:
        print(f"qwen-fix: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="qwen-fix", description=__doc__)
    sub = parser.add_subparsers(required=True, metavar="COMMAND")
    up = sub.add_parser("up", help="run the webhook receiver and a worker on this host")
    up.set_defaults(run=_up)
    web = sub.add_parser("web", help="run the webhook receiver")
    web.set_defaults(run=_web)
    worker = sub.add_parser("worker", help="run a worker that takes jobs from Redis")
    worker.add_argument("--max-jobs", type=int, default=4, help="jobs run at once (default 4)")
    worker.set_defaults(run=_worker)
    return parser


def _web(args: argparse.Namespace) -> int:
    import uvicorn

    from bot.receiver import create_app

    settings = load_settings()
    uvicorn.run(
        create_app(settings),
        host=settings.web_host,
        port=settings.web_port,
        loop="uvloop",
        http="httptools",
        log_config=None,
        access_log=False,
    )
    return 0


def _worker(args: argparse.Namespace) -> int:
    from workers.worker import build_worker

    settings = load_settings()
    _check_docker()
    build_worker(settings, max_jobs=args.max_jobs).run()
    return 0


def _up(args: argparse.Namespace) -> int:
    """Receiver + worker as two child processes, with a local Redis when none is configured."""
    settings = load_settings()
    _check_docker()
    env = dict(os.environ)
    redis = None
    if not settings.redis_url:
        redis, env["REDIS_URL"] = _start_local_redis(settings)
    children = [
        subprocess.Popen([sys.executable, "-m", "workers.cli", role], env=env)
        for role in ("web", "worker")
    ]
    print(
        f"qwen-fix: receiving webhooks on http://{settings.web_host}:{settings.web_port}"
        f"/webhooks/github (Ctrl-C stops)",
        file=sys.stderr,
    )
    try:
        while all(child.poll() is None for child in children):
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        for process in [*children, *([redis] if redis else [])]:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in [*children, *([redis] if redis else [])]:
            process.wait(timeout=30)
    return max((child.returncode or 0) for child in children)


def _start_local_redis(settings: Settings) -> tuple[subprocess.Popen[bytes], str]:
    binary = shutil.which("redis-server")
    if binary is None:
        raise CliError(REDIS_INSTALL_HINT)
    port = _free_port()
    directory = settings.data_dir / "redis"
    directory.mkdir(parents=True, exist_ok=True)
    process = subprocess.Popen(
        [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(directory),
            "--appendonly",
            "yes",
            "--save",
            "",
        ],
        stdout=subprocess.DEVNULL,
    )
    _wait_for_port(port, process)
    return process, f"redis://127.0.0.1:{port}"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _wait_for_port(port: int, process: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise CliError(f"redis-server exited with status {process.returncode} at start")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise CliError(f"redis-server did not listen on port {port} within {timeout:.0f} s")


def _check_docker() -> None:
    import docker

    try:
        client = docker.from_env(timeout=5)
        client.ping()
        client.close()
    except Exception as exc:
        raise CliError(DOCKER_HINT.format(error=type(exc).__name__)) from None


if __name__ == "__main__":
    sys.exit(main())
