"""qwen-fix turns GitHub issues into tested pull requests with a self-hosted Qwen3-Coder model.

Run `qwen-fix up` to receive webhooks and work on this host, `qwen-fix doctor` to check the
setup, `qwen-fix solve` to fix an issue in a local repository without GitHub.
"""

# The command lives in workers/ because it wires every package together (bot/ may not import
# workers/ or sandbox/).

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from bot.log import configure_logging
from bot.manifest import CreatedApp
from bot.settings import Settings, SettingsError, load_settings
from workers.preflight import SetupProblem, check_docker, check_redis

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
    configure_logging("DEBUG" if args.debug else os.environ.get("LOG_LEVEL", "INFO"))
    try:
        code: int = args.run(args)
        return code
    except (SettingsError, CliError, SetupProblem) as exc:
        print(f"qwen-fix: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("qwen-fix: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        if args.debug:
            raise
        print(
            f"qwen-fix: unexpected error: {type(exc).__name__}: {exc}\n"
            "Run again with --debug for the traceback.",
            file=sys.stderr,
        )
        return 1


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="qwen-fix", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--debug", action="store_true", help="log at debug level; tracebacks for unexpected errors"
    )
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
    page = sub.add_parser(
        "run-page", help="render a run's trajectory file as one HTML page, as the run viewer does"
    )
    page.add_argument(
        "trajectory", type=Path, help="a trajectory JSONL file (DATA_DIR/trajectories)"
    )
    page.add_argument("-o", "--output", type=Path, help="write here instead of stdout")
    page.set_defaults(run=_run_page)
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
    create.add_argument(
        "--host",
        default="127.0.0.1",
        help="address the flow's page listens on (default 127.0.0.1; 0.0.0.0 to open it from "
        "another machine)",
    )
    create.set_defaults(run=_app_create)


def _app_create(args: argparse.Namespace) -> int:
    created = asyncio.run(
        _manifest_flow(args.webhook_url, args.github_url, args.org, args.name, args.port, args.host)
    )
    print(f"qwen-fix: wrote .env for app {created.slug}; install it: {created.install_url}")
    return 0


async def _manifest_flow(
    webhook_url: str,
    github_url: str,
    org: str | None,
    name: str | None,
    port: int,
    host: str = "127.0.0.1",
) -> CreatedApp:
    from bot.manifest import ManifestFlowError, run_manifest_flow

    try:
        return await run_manifest_flow(
            webhook_url=webhook_url,
            github_url=github_url,
            org=org,
            name=name,
            listen_host=host,
            port=port,
            on_ready=lambda url: print(open_hint(url, host), file=sys.stderr),
        )
    except ManifestFlowError as exc:
        raise CliError(str(exc)) from None


def open_hint(url: str, host: str) -> str:
    """Where to open the flow's page, and how from another machine (a headless host)."""
    port = url.rsplit(":", 1)[1]
    text = f"qwen-fix: open {url} in a browser to register the app"
    if host in ("127.0.0.1", "localhost", "::1"):
        text += (
            f"\n  on a host without a browser, from your machine: `ssh -L {port}:127.0.0.1:"
            f"{port} {socket.gethostname()}` and open http://127.0.0.1:{port}, or run again with "
            "--host 0.0.0.0"
        )
    return text


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
    webhook_url = _ask("Public URL GitHub should send webhooks to: ", _webhook_url_problem)
    org = _ask("Organization to register it under (empty for your account): ") or None
    asyncio.run(_manifest_flow(webhook_url, "https://github.com", org, None, 3000))
    return load_settings()


def _ask(question: str, problem: Callable[[str], str | None] | None = None) -> str:
    """One answer at the terminal, asked again until `problem` finds none; Ctrl-D or Ctrl-C
    ends the command with one line."""
    while True:
        try:
            answer = input(question).strip()
        except (EOFError, KeyboardInterrupt):
            print(file=sys.stderr)
            raise CliError(f"no app was registered (cancelled). {FIRST_RUN_HINT}") from None
        why = problem(answer) if problem else None
        if why is None:
            return answer
        print(f"qwen-fix: {why}; try again.", file=sys.stderr)


def _webhook_url_problem(answer: str) -> str | None:
    from bot.manifest import ManifestFlowError, webhook_target

    try:
        webhook_target(answer)
    except ManifestFlowError as exc:
        return str(exc)
    return None


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
    evaluate.add_argument(
        "--repos-from",
        default="https://github.com",
        help="Git base URL an instance's owner/name repo is cloned from (default GitHub)",
    )
    evaluate.add_argument(
        "--predictions",
        type=Path,
        help="judge these patches (SWE-bench predictions JSONL) instead of running the agent",
    )
    evaluate.add_argument(
        "--mirrors",
        type=Path,
        help="directory of local mirrors: DIR/owner/name[.git] or DIR/owner__name[.git]",
    )
    evaluate.add_argument(
        "--out-dir",
        type=Path,
        default=Path("qwen-fix-eval"),
        help="where predictions.jsonl and report.json go (default ./qwen-fix-eval)",
    )
    _model_flags(evaluate)
    evaluate.set_defaults(run=_eval)


def _solve(args: argparse.Namespace) -> int:
    from workers.git import GitError
    from workers.solve import SolveError, solve_from_args

    check_docker()
    try:
        return asyncio.run(solve_from_args(args, sys.stdout, sys.stderr))
    except (SolveError, GitError, OSError) as exc:
        raise CliError(str(exc)) from None


def _eval(args: argparse.Namespace) -> int:
    from workers.eval import eval_from_args

    check_docker()
    try:
        return asyncio.run(eval_from_args(args, sys.stdout))
    except (ValueError, OSError) as exc:
        raise CliError(str(exc)) from None


def _run_page(args: argparse.Namespace) -> int:
    from bot.run_assets import STYLE
    from bot.run_render import events_of_jsonl, standalone_page

    try:
        events = events_of_jsonl(args.trajectory.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise CliError(f"cannot read {args.trajectory} as a trajectory: {exc}") from None
    html = standalone_page(args.trajectory.stem, events, STYLE)
    if args.output is None:
        sys.stdout.write(html)
    else:
        args.output.write_text(html, encoding="utf-8")
    return 0


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
            asyncio.wait_for(
                run_doctor(doctor, report, infrastructure=False, probes=False), timeout=30
            )
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
    check_redis(settings.redis_url, role="web")
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
    check_docker()
    check_redis(settings.redis_url, role="worker")
    build_worker(settings, max_jobs=args.max_jobs).run()
    return 0


def _up(args: argparse.Namespace) -> int:
    """Receiver + worker as child processes, with a local Redis when none is configured."""
    from workers.local_stack import LocalStack

    settings = _settings_or_first_run()
    check_docker()
    if settings.redis_url:
        check_redis(settings.redis_url, role="up")
    stack = LocalStack(settings, dict(os.environ))
    return stack.run(lambda: _warn_about_the_model(settings))


if __name__ == "__main__":
    sys.exit(main())
