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
    ) -> Harness:
        redis.Redis.from_url(redis_url).flushall()
        emulator = GitHubEmulator(tmp_path / "github").start()
        model = ScriptedModelServer(script, mode=mode, config=config).start()  # type: ignore[arg-type]
        harness = build_harness(tmp_path, emulator, model, redis_url, sandbox_image, files)
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
