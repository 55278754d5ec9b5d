"""pytest fixture for the emulator: `from tests.github_emulator.fixtures import github_emulator`."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.github_emulator.emulator import GitHubEmulator


@pytest.fixture
def github_emulator(tmp_path: Path) -> Iterator[GitHubEmulator]:
    """A running, empty emulator whose bare repos live under the test's tmp_path."""
    with GitHubEmulator(tmp_path / "github") as emulator:
        yield emulator
