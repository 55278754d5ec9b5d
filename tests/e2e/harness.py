"""The whole app on one machine for end-to-end tests: receiver and worker processes, a real
Redis, real Docker, the GitHub emulator and the scripted model server."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import docker
from arq import create_pool
from arq.connections import RedisSettings
from arq.jobs import Job

from sandbox.labels import job_name_filter
from tests.conftest import free_port, wait_for_port
from tests.github_emulator.emulator import GitHubEmulator
from tests.model_server.script import Turn
from tests.model_server.server import ScriptedModelServer

APP_ID = 4711
SECRET = "e2e-webhook-secret"
OWNER = "octo-org"
REPO = "octo-org/calc"
FILES = {
    "calc.py": "def add(a, b):\n    return a - b\n\n\ndef mul(a, b):\n    return a * b\n",
    "test_calc.py": "from calc import add\n\n\ndef test_add():\n    assert add(2, 3) == 5\n",
    "README.md": "A calculator.\n",
}
WAIT = 240.0
T = TypeVar("T")


def call(name: str, **params: str) -> str:
    """One tool call as Qwen3-Coder writes it."""
    body = "".join(f"<parameter={k}>\n{v}\n</parameter>\n" for k, v in params.items())
    return f"<tool_call>\n<function={name}>\n{body}</function>\n</tool_call>"


def fix_add_script(summary: str = "`add` subtracted; it now returns `a + b`.") -> list[Turn]:
    return [
        "I'll plan first.\n"
        + call(
            "todo",
            command="set",
            items='[{"content": "Fix add in calc.py"}, {"content": "Run the tests"}]',
        ),
        call(
            "str_replace_editor",
            command="str_replace",
            path="calc.py",
            old_str="    return a - b",
            new_str="    return a + b",
        ),
        call("todo", command="update", index="1", status="done"),
        call("run_tests"),
        call("submit", summary=summary),
        call("submit", summary=summary),
    ]


@dataclass
class Harness:
    """Everything a test drives and inspects."""

    root: Path
    emulator: GitHubEmulator
    model: ScriptedModelServer
    redis_url: str
    env: dict[str, str]
    web_port: int
    installation: int
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def webhook_url(self) -> str:
        return f"http://127.0.0.1:{self.web_port}/webhooks/github"

    def start(self, *roles: str) -> None:
        for role in roles or ("web", "worker"):
            log = self.root / f"{role}.log"
            self.processes[role] = subprocess.Popen(
                [sys.executable, "-m", "workers.cli", role],
                env=self.env,
                cwd=self.root,
                stdout=log.open("ab"),
                stderr=subprocess.STDOUT,
            )
            if role == "web":
                wait_for_port(self.web_port, timeout=30)

    def stop(self, *roles: str) -> None:
        for role in roles or tuple(self.processes):
            process = self.processes.pop(role)
            process.terminate()
            process.wait(timeout=30)

    def output(self) -> str:
        logs = sorted(self.root.glob("*.log"))
        return "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-8000:]}" for p in logs)

    def send(self, event: str, action: str | None, **context: Any) -> dict[str, Any]:
        """GitHub sends a webhook built from the emulator's state to the receiver."""
        payload = self.emulator.webhook(event, action, repo=context.pop("repo", REPO), **context)
        return self.emulator.send(event, payload)

    def comment(self, number: int, body: str, author: str = "maintainer") -> int:
        """A user comments on an issue or pull request; GitHub delivers issue_comment.created."""
        comment_id = self.emulator.add_comment(REPO, number, body, author)
        delivery = self.send(
            "issue_comment", "created", sender=author, issue=number, comment=comment_id
        )
        assert delivery["status_code"] in (200, 202), delivery
        return comment_id

    def label(self, issue: int, sender: str = "maintainer") -> dict[str, Any]:
        self.emulator.add_label(REPO, "qwen-fix", issue=issue)
        return self.send("issues", "labeled", sender=sender, issue=issue, label="qwen-fix")

    def wait_for(
        self,
        what: str,
        check: Callable[[], T | None],
        timeout: float = WAIT,
        *,
        jobs_may_fail: bool = False,
    ) -> T:
        """Poll `check` until it gives something; fail early when a process exits or (unless
        `jobs_may_fail`) a job fails."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = check()
            if found:
                return found
            for role, process in self.processes.items():
                assert process.poll() is None, f"{role} exited\n{self.output()}"
            worker_log = self.root / "worker.log"
            failed = worker_log.exists() and " failed, " in worker_log.read_text(errors="replace")
            if failed and not jobs_may_fail:
                raise AssertionError(f"a job failed while waiting for {what}\n{self.output()}")
            time.sleep(0.2)
        raise AssertionError(f"timed out waiting for {what}\n{self.output()}")

    def tracking(self, number: int) -> str | None:
        """The app's tracking comment (anyone can paste its marker into a comment of theirs)."""
        for comment in self.emulator.comments(REPO, number):
            mine = comment["user"]["login"] == "qwen-fix[bot]"
            if mine and "<!-- qwen-fix:tracking -->" in (comment["body"] or ""):
                return str(comment["body"])
        return None

    def tracking_says(self, number: int, text: str, timeout: float = WAIT) -> str:
        return self.wait_for(
            f"tracking comment on #{number} saying {text!r}",
            lambda: body if text in (body := self.tracking(number) or "") else None,
            timeout,
        )

    def job_result(self, job_id: str) -> Any:
        async def wait() -> Any:
            redis = await create_pool(RedisSettings.from_dsn(self.redis_url))
            try:
                return await Job(job_id, redis).result(timeout=WAIT, poll_delay=0.2)
            finally:
                await redis.aclose()

        return asyncio.run(wait())

    def sandboxes(self, *job_ids: str) -> list[Any]:
        """Containers left behind by these jobs (other suites may share the engine).

        The listing entries themselves: `containers.list` would inspect each one afterwards,
        and fail on a container that a reaper removed in between."""
        client = docker.from_env()
        try:
            return [
                container
                for job_id in job_ids
                for container in client.api.containers(
                    all=True, filters={"name": job_name_filter(job_id)}
                )
            ]
        finally:
            client.close()

    def bot_comments(self, number: int) -> list[dict[str, Any]]:
        return [c for c in self.emulator.comments(REPO, number) if c["user"]["type"] == "Bot"]


def build_harness(
    root: Path,
    emulator: GitHubEmulator,
    model: ScriptedModelServer,
    redis_url: str,
    image: str,
    files: dict[str, str] | None = None,
) -> Harness:
    key = emulator.add_app(APP_ID, slug="qwen-fix")
    installation = emulator.add_installation(APP_ID, OWNER, account_type="Organization")
    emulator.add_repo(OWNER, "calc", files or FILES, installation)
    emulator.set_permission(REPO, "maintainer", "write")
    emulator.set_permission(REPO, "watcher", "read")
    port = free_port()
    emulator.set_webhook(APP_ID, f"http://127.0.0.1:{port}/webhooks/github", SECRET)
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(root),
        "APP_ID": str(APP_ID),
        "PRIVATE_KEY": key,
        "WEBHOOK_SECRET": SECRET,
        "GITHUB_API_URL": emulator.api_url,
        "REDIS_URL": redis_url,
        "MODEL_BASE_URL": model.base_url,
        "SANDBOX_IMAGE": image,
        "SANDBOX_MEMORY": "512m",
        "DATA_DIR": str(root / "data"),
        "WEB_HOST": "127.0.0.1",
        "WEB_PORT": str(port),
        "METRICS_PORT": str(free_port()),
        "LOG_LEVEL": "INFO",
    }
    if "DOCKER_HOST" in os.environ:
        env["DOCKER_HOST"] = os.environ["DOCKER_HOST"]
    return Harness(root, emulator, model, redis_url, env, port, installation)
