"""Fixtures for agent tests: the tool schemas the model sees, and a scripted server factory."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.model_server import ScriptedModelServer, Turn
from workers.agent.tools.toolbox import ALL_TOOLS


@pytest.fixture
def tools() -> list[dict[str, Any]]:
    return [schema for schema, _ in ALL_TOOLS.values()]


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
