"""The first hour with qwen-fix, through the real command: every mistake a newcomer makes ends
with one or two lines that name the setting and the fix, a non-zero exit, and no traceback."""

from __future__ import annotations

import os
import pty
import select
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import free_port, wait_for_port
from tests.github_emulator.auth import new_key_pair

# Each test starts `qwen-fix` processes and times what they print: they run in CI's Docker
# process, one at a time, not beside it under load.
pytestmark = pytest.mark.docker

PROJECT_ROOT = Path(__file__).resolve().parents[2]
KEY = new_key_pair()[0]


def base_env(**extra: str) -> dict[str, str]:
    """The machine's environment without any qwen-fix setting, plus `extra`."""
    names = ("APP_", "PRIVATE_KEY", "WEBHOOK_", "MODEL_", "REDIS_", "GITHUB_", "AGENT_", "SANDBOX_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(names)}
    return env | {"PYTHONPATH": str(PROJECT_ROOT)} | extra


def app_env(**extra: str) -> dict[str, str]:
    return base_env(**({"APP_ID": "1", "PRIVATE_KEY": KEY, "WEBHOOK_SECRET": "s3cret"} | extra))


def qwen_fix(*args: str, env: dict[str, str], cwd: Path, timeout: float = 60) -> tuple[int, str]:
    done = subprocess.run(
        [sys.executable, "-m", "workers.cli", *args],
        env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip
    return done.returncode, done.stdout + done.stderr


def assert_one_clear_message(output: str, *names: str) -> None:
    assert "Traceback" not in output, output
    for name in names:
        assert name in output, output


def closed_port() -> int:
    return free_port()


def test_a_private_key_that_is_not_a_pem_stops_the_command(tmp_path: Path) -> None:
    code, output = qwen_fix("web", env=app_env(PRIVATE_KEY="not a pem"), cwd=tmp_path)
    assert code == 2
    assert_one_clear_message(output, "PRIVATE_KEY is not the app's private key", ".pem")


def test_a_redis_url_that_does_not_answer_stops_up_before_it_says_ready(
    tmp_path: Path, docker_client: object
) -> None:
    url = f"redis://127.0.0.1:{closed_port()}"
    started = time.monotonic()
    code, output = qwen_fix("up", env=app_env(REDIS_URL=url), cwd=tmp_path)
    assert code == 2 and time.monotonic() - started < 30
    assert_one_clear_message(output, f"REDIS_URL={url} does not answer", "unset REDIS_URL")
    assert "receiving webhooks" not in output


@pytest.mark.parametrize("role", ["web", "worker"])
def test_web_and_worker_say_which_redis_they_looked_for(
    tmp_path: Path, role: str, docker_client: object
) -> None:
    with socket.socket() as probe:
        if probe.connect_ex(("127.0.0.1", 6379)) == 0:
            pytest.skip("a Redis answers on 6379 on this machine: the default would work")
    code, output = qwen_fix(role, env=app_env(), cwd=tmp_path)
    assert code == 2
    assert_one_clear_message(output, "REDIS_URL is unset", "redis://127.0.0.1:6379", "qwen-fix up")


def test_solve_with_the_model_server_down_says_where_it_looked_at_once(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    url = f"http://127.0.0.1:{closed_port()}/v1"
    started = time.monotonic()
    code, output = qwen_fix(
        "solve", str(repo), "--issue", "x", "--image", "none",
        env=base_env(MODEL_BASE_URL=url), cwd=tmp_path,
    )  # fmt: skip
    assert code == 2 and time.monotonic() - started < 15
    assert_one_clear_message(output, f"model server unreachable at {url}", "MODEL_BASE_URL")


def run_at_a_terminal(args: list[str], answers: list[bytes | None], cwd: Path) -> tuple[int, str]:
    """Run qwen-fix with a terminal as stdin; each answer is typed when a prompt shows, None
    is Ctrl-D."""
    controller, terminal = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "workers.cli", *args],
        stdin=terminal, stdout=terminal, stderr=terminal, cwd=cwd,
        env=base_env(), close_fds=True,
    )  # fmt: skip
    os.close(terminal)
    output = b""
    pending = list(answers)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        ready, _, _ = select.select([controller], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(controller, 4096)
            except OSError:
                break
            if not chunk:
                break
            output += chunk
            if pending and output.rstrip().endswith(b":"):
                answer = pending.pop(0)
                os.write(controller, b"\x04" if answer is None else answer + b"\n")
        elif process.poll() is not None:
            break
    process.wait(timeout=10)
    os.close(controller)
    return process.returncode, output.decode(errors="replace")


def test_ctrl_d_at_the_first_run_question_ends_with_one_line(tmp_path: Path) -> None:
    code, output = run_at_a_terminal(["up"], [None], tmp_path)
    assert code == 2
    assert_one_clear_message(output, "no app was registered (cancelled)", "qwen-fix app create")


def test_a_bad_webhook_url_is_refused_at_once_and_asked_again(tmp_path: Path) -> None:
    code, output = run_at_a_terminal(["up"], [b"not a url", None], tmp_path)
    assert code == 2
    assert_one_clear_message(output, "must be an http(s) URL", "try again")
    assert output.count("Public URL GitHub should send webhooks to:") == 2
    assert "Organization" not in output


def test_app_create_on_a_busy_port_says_to_pick_another(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        code, output = qwen_fix(
            "app", "create", "--webhook-url", "https://example.com", "--port", str(port),
            env=base_env(), cwd=tmp_path,
        )  # fmt: skip
    assert code == 2
    assert_one_clear_message(output, f"cannot listen on 127.0.0.1:{port}", "--port")


def test_app_create_tells_a_headless_host_how_to_reach_the_page(tmp_path: Path) -> None:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "workers.cli", "app", "create", "--webhook-url",
         "https://example.com", "--port", str(port)],
        env=base_env(), cwd=tmp_path, stderr=subprocess.PIPE, text=True,
        start_new_session=True,
    )  # fmt: skip
    assert process.stderr is not None
    wait_for_port(port, timeout=30)
    first = ""
    while "--host" not in first and len(first.splitlines()) < 6:
        first += process.stderr.readline()
    os.killpg(process.pid, signal.SIGINT)  # Ctrl-C at the terminal
    rest = process.stderr.read()
    assert process.wait(timeout=30) == 130
    assert f"open http://127.0.0.1:{port}" in first
    assert f"ssh -L {port}:127.0.0.1:{port}" in first and "--host 0.0.0.0" in first
    assert_one_clear_message(rest, "interrupted")


def test_help_speaks_to_users(tmp_path: Path) -> None:
    code, output = qwen_fix("--help", env=base_env(), cwd=tmp_path)
    assert code == 0
    first = output.split("\n\n")[1]
    assert first.startswith("qwen-fix turns GitHub issues into tested pull requests")
    assert "lives in workers" not in output
    _, evaluate = qwen_fix("eval", "--help", env=base_env(), cwd=tmp_path)
    assert "where predictions.jsonl and report.json go" in evaluate


def test_a_receiver_without_github_warns_in_one_line(tmp_path: Path, redis_url: str) -> None:
    """Started with no way to reach GitHub, the redelivery check says so once, no traceback."""
    port = free_port()
    env = app_env(
        REDIS_URL=redis_url, GITHUB_API_URL=f"http://127.0.0.1:{closed_port()}",
        WEB_HOST="127.0.0.1", WEB_PORT=str(port), LOG_LEVEL="INFO",
    )  # fmt: skip
    log = (tmp_path / "web.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "workers.cli", "web"], env=env, cwd=tmp_path,
        stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        wait_for_port(port, timeout=30)
        deadline = time.monotonic() + 30
        while "redelivery" not in (tmp_path / "web.log").read_text():
            assert time.monotonic() < deadline, (tmp_path / "web.log").read_text()
            time.sleep(0.2)
    finally:
        process.terminate()
        process.wait(timeout=30)
    output = (tmp_path / "web.log").read_text()
    assert "redelivery.skipped" in output and "could not list the app's failed deliveries" in output
    assert "Traceback" not in output and '"exception"' not in output
