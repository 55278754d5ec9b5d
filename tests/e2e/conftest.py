"""Fixtures of the end-to-end suites: a fresh app, emulator and model server per test."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from tests.e2e.harness import Harness, build_harness
from tests.github_emulator.emulator import GitHubEmulator
from tests.model_server.config import ServerConfig
from tests.model_server.script import Turn
from tests.model_server.server import ScriptedModelServer

MakeHarness = Callable[..., Harness]


@pytest.fixture
def make_harness(tmp_path: Path, redis_url: str, sandbox_image: str) -> Iterator[MakeHarness]:
    made: list[Harness] = []

    def make(
        script: list[Turn],
        *,
        mode: str = "native",
        files: dict[str, str] | None = None,
        start: bool = True,
        env: dict[str, str] | None = None,
        config: ServerConfig | None = None,
        per_conversation: bool = False,
        redis_at: str | None = None,
    ) -> Harness:
        """`redis_at`: another Redis than the session's (a durable one the test restarts)."""
        queue = redis_at or redis_url
        redis.Redis.from_url(queue).flushall()
        emulator = GitHubEmulator(tmp_path / "github").start()
        model = ScriptedModelServer(
            script,
            mode=mode,  # type: ignore[arg-type]
            config=config,
            per_conversation=per_conversation,
        ).start()
        harness = build_harness(tmp_path, emulator, model, queue, sandbox_image, files)
        harness.env.update(env or {})
        made.append(harness)
        if start:
            harness.start()
        return harness

    yield make
    for harness in made:
        if harness.processes:
            harness.stop()
        harness.model.stop()
        harness.emulator.stop()
