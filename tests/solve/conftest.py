"""Fixtures for local-run tests: a scripted model server factory that stops what it started."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from tests.model_server import ScriptedModelServer, Turn


@pytest.fixture
def scripted_server() -> Iterator[Callable[..., ScriptedModelServer]]:
    started: list[ScriptedModelServer] = []

    def start(script: list[Turn], mode: str = "native") -> ScriptedModelServer:
        server = ScriptedModelServer(script, mode=mode)  # type: ignore[arg-type]
        started.append(server.start())
        return server

    yield start
    for server in started:
        server.stop()
