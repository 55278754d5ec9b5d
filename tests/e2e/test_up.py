"""`qwen-fix up` as a user runs it: ready only once it receives webhooks, and on Ctrl-C or
SIGTERM mid-job an orderly, quiet stop: the job's tracking comment says it stopped and why, its
sandbox is gone, the local Redis stops last, and nothing is printed but a short goodbye."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import docker
import pytest

from tests.e2e.conftest import MakeHarness
from tests.e2e.harness import REPO, Harness, call
from tests.model_server.script import Reply

pytestmark = [pytest.mark.docker, pytest.mark.slow]

SLOW = 60.0


def start_up(h: Harness, env: dict[str, str]) -> tuple[subprocess.Popen[bytes], Path]:
    """`qwen-fix up` in a session of its own, as a shell starts a foreground command."""
    output = h.root / "up.out"
    process = subprocess.Popen(
        [sys.executable, "-m", "workers.cli", "up"],
        env=env, cwd=h.root, stdout=output.open("wb"), stderr=subprocess.STDOUT,
        start_new_session=True,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while "receiving webhooks" not in output.read_text(errors="replace"):
        assert process.poll() is None, output.read_text(errors="replace")
        assert time.monotonic() < deadline, output.read_text(errors="replace")
        time.sleep(0.1)
    return process, output


def redis_servers_of(h: Harness) -> list[int]:
    """Pids of redis-server processes keeping their data under this harness's DATA_DIR."""
    mine = h.root / "data" / "redis"
    pids = []
    for entry in Path("/proc").iterdir():
        try:
            # redis-server renames its process title, but it works in its --dir.
            if b"redis-server" in (entry / "cmdline").read_bytes() and (
                (entry / "cwd").resolve() == mine.resolve()
            ):
                pids.append(int(entry.name))
        except OSError:
            continue
    return pids


def containers_of(h: Harness) -> list[str]:
    """Containers, running or not, that mount anything under this harness's directory."""
    client = docker.from_env()
    try:
        mine = str(h.root)
        return [
            str(c["Id"])
            for c in client.api.containers(all=True)
            if any(str(m.get("Source", "")).startswith(mine) for m in c.get("Mounts") or [])
        ]
    finally:
        client.close()


def listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


@pytest.mark.parametrize("how", ["ctrl-c", "sigterm"])
def test_up_stops_in_order_mid_job(make_harness: MakeHarness, how: str) -> None:
    h = make_harness([Reply(call("bash", command="ls"), delay=SLOW)], start=False)
    env = dict(h.env)
    del env["REDIS_URL"]  # `up` starts its own, and must stop it last
    process, output = start_up(h, env)
    try:
        stop_mid_job(h, process, output, how)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            for pid in redis_servers_of(h):
                os.kill(pid, signal.SIGKILL)


def stop_mid_job(h: Harness, process: subprocess.Popen[bytes], output: Path, how: str) -> None:
    said = output.read_text()
    assert "receiving webhooks on http://127.0.0.1:" in said
    # The receiver really listens once `up` says so.
    assert listening(h.web_port)
    assert len(redis_servers_of(h)) == 1
    issue = h.emulator.add_issue(REPO, "add() subtracts", "It does.", "watcher")
    job_id = json.loads(h.label(issue)["response"]["payload"])["detail"]
    h.wait_for("the model to be asked", lambda: h.model.requests)
    assert len(h.sandboxes(job_id)) == 1
    # The job's sandbox, and the one the warm pool starts for the next job.
    h.wait_for("the pool to refill", lambda: len(containers_of(h)) == 2 or None, timeout=60)
    before = len(output.read_text())
    if how == "ctrl-c":
        os.killpg(process.pid, signal.SIGINT)  # what the terminal sends the foreground group
    else:
        process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=180) == 0
    tail = output.read_text(errors="replace")[before:]
    assert "Traceback" not in tail and '"level": "error"' not in tail, tail
    assert tail.rstrip().endswith("qwen-fix: stopped."), tail
    body = h.tracking(issue) or ""
    assert "Stopped: the worker shut down; the job runs again when a worker is back" in body
    assert h.sandboxes(job_id) == []
    assert containers_of(h) == []  # the warm pool's sandbox too
    assert not listening(h.web_port)
    assert redis_servers_of(h) == []
