"""The `qwen-fix` command. It lives in workers/ because it wires every package together."""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from bot.log import configure_logging
from bot.manifest import CreatedApp
from bot.settings import Settings, SettingsError, load_settings

REDIS_INSTALL_HINT = (
    "no REDIS_URL is set and no redis-server is on PATH: install Redis "
    "(Debian/Ubuntu: `apt-get install redis-server`) or set REDIS_URL=redis://HOST:PORT"
)
DOCKER_HINT = (
    "no Docker engine answers ({error}). Start one (`systemctl start docker`, or "
    "`dockerd >/var/log/dockerd.log 2>&1 &`) or point DOCKER_HOST at one"
)


FIRST_RUN_HINT = (
    "No GitHub App is configured. Register one with "
    "`qwen-fix app create --webhook-url https://YOUR-HOST/webhooks/github` "
    "(it writes .env), or set APP_ID, PRIVATE_KEY and WEBHOOK_SECRET."
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
    _solve_parser(sub)
    _eval_parser(sub)
    _app_parser(sub)
    doctor = sub.add_parser(
        "doctor", help="check the model server, the Docker engine, the sandbox image and Redis"
    )
    doctor.add_argument("--model-url", help="OpenAI-compatible /v1 root (env MODEL_BASE_URL)")
    doctor.add_argument("--model", help="served model name (env MODEL_NAME)")
    doctor.set_defaults(run=_doctor)
    return parser


def _app_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    app = sub.add_parser("app", help="register the GitHub App")
    app_sub = app.add_subparsers(required=True, metavar="ACTION")
    create = app_sub.add_parser(
        "create", help="register a new GitHub App through GitHub's manifest flow; writes .env"
    )
    create.add_argument("--webhook-url", required=True, help="public URL GitHub posts webhooks to")
    create.add_argument("--github-url", default="https://github.com", help="GitHub or GHES root")
    create.add_argument("--org", help="register the app under this organization")
    create.add_argument("--name", help="app name (default from app.yml)")
    create.add_argument("--port", type=int, default=3000, help="local port of the flow's page")
    create.set_defaults(run=_app_create)


def _app_create(args: argparse.Namespace) -> int:
    created = asyncio.run(
        _manifest_flow(args.webhook_url, args.github_url, args.org, args.name, args.port)
    )
    print(f"qwen-fix: wrote .env for app {created.slug}; install it: {created.install_url}")
    return 0


async def _manifest_flow(
    webhook_url: str, github_url: str, org: str | None, name: str | None, port: int
) -> CreatedApp:
    from bot.manifest import ManifestFlowError, run_manifest_flow

    try:
        return await run_manifest_flow(
            webhook_url=webhook_url,
            github_url=github_url,
            org=org,
            name=name,
            port=port,
            on_ready=lambda url: print(
                f"qwen-fix: open {url} to register the app", file=sys.stderr
            ),
        )
    except ManifestFlowError as exc:
        raise CliError(str(exc)) from None


def _settings_or_first_run() -> Settings:
    """The settings; on a first run with no app configured, the manifest flow makes one."""
    try:
        return load_settings()
    except SettingsError as exc:
        unconfigured = "APP_ID is required" in str(exc) and not Path(".env").exists()
        if not (unconfigured and sys.stdin.isatty()):
            if unconfigured:
                raise CliError(f"{exc}\n{FIRST_RUN_HINT}") from None
            raise
    print("qwen-fix: no GitHub App is configured yet; let's register one.", file=sys.stderr)
    webhook_url = input("Public URL GitHub should send webhooks to: ").strip()
    org = input("Organization to register it under (empty for your account): ").strip() or None
    asyncio.run(_manifest_flow(webhook_url, "https://github.com", org, None, 3000))
    return load_settings()


def _model_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model-url", help="OpenAI-compatible /v1 root (env MODEL_BASE_URL)")
    parser.add_argument("--model", help="served model name (env MODEL_NAME)")
    parser.add_argument("--image", help="sandbox image (env SANDBOX_IMAGE; default: build it)")
    parser.add_argument(
        "--max-steps", type=int, default=None, help="model calls (default: AGENT_MAX_STEPS, 100)"
    )


def _solve_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    solve = sub.add_parser(
        "solve",
        help="fix an issue in a local repository; prints the patch (the repository is untouched)",
    )
    solve.add_argument("path", type=Path, help="root of a git repository")
    issue = solve.add_mutually_exclusive_group(required=True)
    issue.add_argument("--issue", help="the issue: first line title, the rest body")
    issue.add_argument("--issue-file", type=Path, help="file holding the issue text")
    solve.add_argument("--test", help="test command (default: detected from the files)")
    _model_flags(solve)
    solve.add_argument("--trajectory", type=Path, help="write the run's JSON lines here")
    solve.add_argument("--plan-only", action="store_true", help="investigate and plan, no edits")
    solve.add_argument("--patch-out", type=Path, help="write the patch here instead of stdout")
    solve.add_argument("--apply", action="store_true", help="git apply the patch to PATH")
    solve.set_defaults(run=_solve)


def _eval_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    evaluate = sub.add_parser("eval", help="run and judge SWE-bench-format instances")
    evaluate.add_argument("instances", type=Path, help="JSONL file of instances")
    evaluate.add_argument("--workers", type=int, default=2, help="instances at once (default 2)")
    evaluate.add_argument("--out-dir", type=Path, default=Path("qwen-fix-eval"))
    _model_flags(evaluate)
    evaluate.set_defaults(run=_eval)


def _solve(args: argparse.Namespace) -> int:
    from workers.git import GitError
    from workers.solve import SolveError, solve_from_args

    _check_docker()
    try:
        return asyncio.run(solve_from_args(args, sys.stdout, sys.stderr))
    except (SolveError, GitError, OSError) as exc:
        raise CliError(str(exc)) from None


def _eval(args: argparse.Namespace) -> int:
    from workers.eval import eval_from_args

    _check_docker()
    try:
        return asyncio.run(eval_from_args(args, sys.stdout))
    except (ValueError, OSError) as exc:
        raise CliError(str(exc)) from None


def _doctor(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from bot.settings import describe_errors
    from workers.doctor import DoctorSettings, run_doctor

    try:
        settings = DoctorSettings()
    except ValidationError as exc:
        raise SettingsError(describe_errors(exc)) from None
    status = asyncio.run(
        run_doctor(settings, sys.stdout, base_url=args.model_url, model=args.model)
    )
    return 1 if status == "fail" else 0


def _warn_about_the_model(settings: Settings) -> None:
    """`up`'s start: the model checks of `qwen-fix doctor`, what is not ok printed as warnings."""
    import io

    from workers.doctor import DoctorSettings, run_doctor

    report = io.StringIO()
    try:
        doctor = DoctorSettings.model_validate(settings.model_dump())
        status = asyncio.run(
            asyncio.wait_for(run_doctor(doctor, report, infrastructure=False), timeout=90)
        )
    except Exception as exc:
        print(f"qwen-fix: warning: the model checks did not finish ({exc})", file=sys.stderr)
        return
    if status != "ok":
        lines = [line for line in report.getvalue().splitlines() if not line.startswith("ok")]
        print("qwen-fix: warning: the model server is not quite right:", file=sys.stderr)
        print("\n".join(f"  {line}" for line in lines), file=sys.stderr)


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
    settings = _settings_or_first_run()
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
    _warn_about_the_model(settings)
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
