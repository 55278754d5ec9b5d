"""Fixtures for agent tests: the tool schemas the model sees."""

from __future__ import annotations

from typing import Any

import pytest

from workers.agent.tools.toolbox import ALL_TOOLS


@pytest.fixture
def tools() -> list[dict[str, Any]]:
    return [schema for schema, _ in ALL_TOOLS.values()]
