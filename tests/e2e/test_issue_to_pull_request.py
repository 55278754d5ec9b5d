"""One labeled issue becomes one pull request, through every real part.

A signed `issues.labeled` delivery reaches the real receiver (`qwen-fix web`, its own process)
→ an arq job over a real Redis → the worker (`qwen-fix worker`, its own process) clones from
the GitHub emulator over git smart HTTP → a real Docker sandbox → the scripted model edits a
file and runs the tests → the branch is pushed back to the emulator and a pull request opened.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from arq import create_pool
from arq.connections import RedisSettings
from arq.jobs import Job

from bot.jobs import IssueJob, enqueue
from bot.signature import sign
from tests.conftest import free_port, wait_for_port
from tests.github_emulator.emulator import GitHubEmulator
from tests.model_server.server import ScriptedModelServer

pytestmark = [pytest.mark.docker, pytest.mark.slow]

APP_ID = 4711
SECRET = "e2e-webhook-secret"
REPO = "octo-org/calc"
FILES = {
    "calc.py": "def add(a, b):\n    return a - b\n",
    "test_calc.py": "from calc import add\n\n\ndef test_add():\n    assert add(2, 3) == 5\n",
    "README.md": "A calculator.\n",
}
JOB_TIMEOUT = 240.0


def fix_trajectory() -> list[str]:
    """What Qwen3-Coder says, turn by turn, to fix `add` (raw text, as the model generates it)."""

    def call(name: str, **params: str) -> str:
        body = "".join(f"<parameter={k}>\n{v}\n</parameter>\n" for k, v in params.items())
        return f"<tool_call>\n<function={name}>\n{body}</function>\n</tool_call>"

    summary = "`add` subtracted instead of adding; it now returns `a + b`."
    return [
        "I'll start with a plan.\n"
        + call(
            "todo",
            command="set",
            items='[{"content": "Reproduce the failing test"}, '
            '{"content": "Fix add in calc.py"}, {"content": "Run the tests"}]',
        ),
        call("bash", command="python3 -m pytest -q test_calc.py"),
        call(
            "str_replace_editor",
            command="str_replace",
            path="calc.py",
            old_str="    return a - b",
            new_str="    return a + b",
        ),
        call("todo", command="update", index="2", status="done"),
        call("run_tests"),
        call("submit", summary=summary),
        call("submit", summary=summary),
    ]


@dataclass
class App:
    """The app's two processes and where they log."""

    url: str
    processes: list[subprocess.Popen[bytes]]
    logs: list[Path]

    def output(self) -> str:
        return "\n".join(
            f"--- {log.name}\n{log.read_text(errors='replace')[-6000:]}" for log in self.logs
        )

    def assert_alive(self) -> None:
        for process in self.processes:
            assert process.poll() is None, f"a qwen-fix process exited\n{self.output()}"


@pytest.fixture
def emulator(tmp_path: Path) -> Iterator[GitHubEmulator]:
    with GitHubEmulator(tmp_path / "github") as emulator:
        yield emulator


@pytest.fixture
def model_server() -> Iterator[ScriptedModelServer]:
    # Twice the trajectory: the test runs the same job a second time.
    with ScriptedModelServer(fix_trajectory() * 2, mode="native") as server:
        yield server


@pytest.fixture
def app(
    tmp_path: Path,
    emulator: GitHubEmulator,
    model_server: ScriptedModelServer,
    redis_url: str,
    sandbox_image: str,
) -> Iterator[App]:
    key = emulator.add_app(APP_ID, slug="qwen-fix")
    installation = emulator.add_installation(APP_ID, "octo-org", account_type="Organization")
    emulator.add_repo("octo-org", "calc", FILES, installation)
    emulator.set_permission(REPO, "maintainer", "write")
    emulator.set_permission(REPO, "watcher", "read")
    port = free_port()
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "APP_ID": str(APP_ID),
        "PRIVATE_KEY": key,
        "WEBHOOK_SECRET": SECRET,
        "GITHUB_API_URL": emulator.api_url,
        "REDIS_URL": redis_url,
        "MODEL_BASE_URL": model_server.base_url,
        "MODEL_NAME": "Qwen/Qwen3-Coder-480B-A35B-Instruct-FP8",
        "SANDBOX_IMAGE": sandbox_image,
        "SANDBOX_MEMORY": "512m",
        "DATA_DIR": str(tmp_path / "data"),
        "WEB_HOST": "127.0.0.1",
        "WEB_PORT": str(port),
        "LOG_LEVEL": "INFO",
    }
    if "DOCKER_HOST" in os.environ:
        env["DOCKER_HOST"] = os.environ["DOCKER_HOST"]
    processes, logs = [], []
    for role in ("web", "worker"):
        log = tmp_path / f"{role}.log"
        logs.append(log)
        processes.append(
            subprocess.Popen(
                [sys.executable, "-m", "workers.cli", role],
                env=env,
                cwd=tmp_path,
                stdout=log.open("wb"),
                stderr=subprocess.STDOUT,
            )
        )
    started = App(f"http://127.0.0.1:{port}", processes, logs)
    try:
        wait_for_port(port, timeout=30)
        yield started
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(timeout=30)


def deliver(app: App, payload: dict, delivery: str, secret: str = SECRET) -> httpx.Response:
    import json

    body = json.dumps(payload).encode()
    return httpx.post(
        f"{app.url}/webhooks/github",
        content=body,
        headers={
            "X-GitHub-Event": "issues",
            "X-GitHub-Delivery": delivery,
            "X-Hub-Signature-256": sign(secret.encode(), body),
            "Content-Type": "application/json",
            "User-Agent": "GitHub-Hookshot/e2e",
        },
        timeout=10,
    )


def wait_for_pull(emulator: GitHubEmulator, app: App) -> dict:
    deadline = time.monotonic() + JOB_TIMEOUT
    while time.monotonic() < deadline:
        pulls = emulator.pulls(REPO)
        if pulls:
            return pulls[0]
        app.assert_alive()
        time.sleep(0.25)
    raise AssertionError(f"no pull request after {JOB_TIMEOUT} s\n{app.output()}")


def job_results(redis_url: str, job_id: str) -> object:
    async def wait() -> object:
        redis = await create_pool(RedisSettings.from_dsn(redis_url))
        try:
            return await Job(job_id, redis).result(timeout=JOB_TIMEOUT, poll_delay=0.2)
        finally:
            await redis.aclose()

    return asyncio.run(wait())


def test_a_labeled_issue_becomes_a_pull_request(
    emulator: GitHubEmulator, app: App, model_server: ScriptedModelServer, redis_url: str
) -> None:
    issue = emulator.add_issue(REPO, "add() subtracts", "`add(2, 3)` returns -1.", "watcher")
    emulator.add_label(REPO, "qwen-fix", issue=issue)
    payload = emulator.webhook(
        "issues", "labeled", repo=REPO, sender="maintainer", issue=issue, label="qwen-fix"
    )

    # Refusals first, so nothing they might queue could hide behind the real job.
    assert deliver(app, payload, "bad-sig", secret="wrong").status_code == 401
    read_only = emulator.webhook(
        "issues", "labeled", repo=REPO, sender="watcher", issue=issue, label="qwen-fix"
    )
    refused = deliver(app, read_only, "by-reader")
    assert refused.status_code == 200
    assert refused.json()["status"] == "ignored"

    accepted = deliver(app, payload, "delivery-1")
    assert accepted.status_code == 202, accepted.text
    again = deliver(app, payload, "delivery-1")
    assert again.status_code == 200
    assert again.json()["status"] == "duplicate"

    pull = wait_for_pull(emulator, app)
    result = job_results(redis_url, accepted.json()["detail"])
    assert isinstance(result, dict), app.output()
    assert result["pr_number"] == pull["number"]

    branch = f"qwen-fix/issue-{issue}"
    assert pull["head"] == branch
    assert pull["base"] == "main"
    assert pull["title"] == "Fix #1: add() subtracts"
    assert pull["draft"] is False
    body = pull["body"]
    assert f"Fixes #{issue}" in body
    assert "calc.py | 2 +-" in body
    assert "✅ `python3 -m pytest -q` passed." in body
    assert "<details><summary>Test log</summary>" in body
    assert "1 passed" in body
    assert "- [x] Fix add in calc.py" in body
    assert emulator.file_at(REPO, branch, "calc.py") == "def add(a, b):\n    return a + b\n"
    assert emulator.file_at(REPO, "main", "calc.py") == FILES["calc.py"]

    comments = [c for c in emulator.comments(REPO, issue) if c["user"]["type"] == "Bot"]
    assert len(comments) == 1
    assert f"#{pull['number']}" in comments[0]["body"]
    assert pull_url(emulator, pull["number"]) in comments[0]["body"]

    # arq runs a job at least once: the same job again finds its branch, PR and comment.
    async def rerun() -> str:
        redis = await create_pool(RedisSettings.from_dsn(redis_url))
        try:
            job = IssueJob(
                installation_id=emulator.world.repo(REPO).installation.id,  # type: ignore[union-attr]
                repository=REPO,
                issue_number=issue,
                triggered_by="maintainer",
                delivery_id="delivery-1-rerun",
            )
            assert await enqueue(redis, job)
            return job.job_id()
        finally:
            await redis.aclose()

    second = job_results(redis_url, asyncio.run(rerun()))
    assert isinstance(second, dict), app.output()
    assert second["pr_number"] == pull["number"]
    assert len(emulator.pulls(REPO)) == 1
    assert [name for name in emulator.branches(REPO) if name.startswith("qwen-fix/")] == [branch]
    assert len([c for c in emulator.comments(REPO, issue) if c["user"]["type"] == "Bot"]) == 1
    assert model_server.remaining == 0


def pull_url(emulator: GitHubEmulator, number: int) -> str:
    return f"{emulator.web_url}/{REPO}/pull/{number}"
