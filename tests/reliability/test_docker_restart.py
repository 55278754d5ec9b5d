"""The Docker engine restarted in the middle of a job (as `systemctl restart docker` does:
SIGTERM, the containers stop, the engine comes back): the job fails with the reason, the
worker stays up, its pool heals, and the next job runs."""

from __future__ import annotations

import os
import shlex
import time
from pathlib import Path

import docker
import pytest

from tests.e2e.conftest import MakeHarness
from tests.e2e.harness import REPO, fix_add_script
from tests.reliability.conftest import as_root, failed_comment, slowed, until

pytestmark = [pytest.mark.docker, pytest.mark.slow]


def engine_process() -> tuple[int, list[str]]:
    """The running dockerd: its pid and command line (this machine's engine, not a socket
    somewhere else: restarting it is this test's whole point)."""
    if os.environ.get("DOCKER_HOST", "unix://").startswith(("tcp:", "ssh:")):
        pytest.fail("this test restarts the local Docker engine; DOCKER_HOST points elsewhere")
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if argv and Path(argv[0].decode()).name == "dockerd":
            return int(entry.name), [a.decode() for a in argv if a]
    pytest.fail("no dockerd runs on this machine; run `bash scripts/bootstrap`")


def restart_engine() -> float:
    """Stop dockerd as a service manager does, start it again with the same arguments, and
    wait until it answers; returns the seconds it was away."""
    pid, argv = engine_process()
    began = time.monotonic()
    stopped = as_root(["kill", "-TERM", str(pid)])
    assert stopped.returncode == 0, f"could not stop dockerd: {stopped.stderr}"
    while Path(f"/proc/{pid}").exists():
        assert time.monotonic() - began < 60, "dockerd did not stop within 60 s"
        time.sleep(0.1)
    # As scripts/bootstrap starts it: detached, its log appended to /var/log/dockerd.log.
    command = " ".join(shlex.quote(arg) for arg in argv)
    started = as_root(["sh", "-c", f"{command} >>/var/log/dockerd.log 2>&1 &"])
    assert started.returncode == 0, f"could not start dockerd: {started.stderr}"
    while True:
        assert time.monotonic() - began < 90, "dockerd did not come back within 90 s"
        try:
            client = docker.from_env(timeout=5)  # asks the engine its API version at once
            client.ping()
            client.close()
            return time.monotonic() - began
        except Exception:
            time.sleep(0.2)


def test_an_engine_restart_fails_the_job_with_its_reason_and_the_next_job_runs(
    make_harness: MakeHarness,
) -> None:
    h = make_harness(
        slowed(fix_add_script(), {1: 2.0}),  # the engine restarts while the model thinks
        per_conversation=True,
        env={"WORKER_HEARTBEAT": "0.5"},
    )
    first = h.emulator.add_issue(REPO, "add() subtracts", "It does.", "watcher")
    h.label(first)
    until(h, "the model's second turn", lambda: len(h.model.requests) >= 2)
    away = restart_engine()
    failed = until(h, "the first job to fail", lambda: failed_comment(h.tracking(first)))
    second = h.emulator.add_issue(REPO, "add() still subtracts", "It does.", "watcher")
    h.label(second)
    opened = until(h, "the next job", lambda: "Opened #" in (h.tracking(second) or ""))
    print(
        f"\ndocker engine restarted mid-job (away {away:.1f} s): 1 job failed with the reason, "
        f"worker up, next job opened: {opened}"
    )
    assert "sandbox" in failed.lower(), failed
    assert "An internal error" not in failed, failed
