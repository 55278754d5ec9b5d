"""A running emulator with one app, installation and repository, and githubkit clients for it."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from githubkit import AppAuthStrategy, AppInstallationAuthStrategy, GitHub

from tests.github_emulator import GitHubEmulator

# githubkit caches JWTs and tokens per process by app id: every emulator gets fresh ids.
APP_IDS = itertools.count(5001)
FILES = {"README.md": "hello\n", "src/app.py": "a = 1\nb = 2\nc = 3\n"}


@dataclass
class Hub:
    """The emulator, the app's key and ids, and clients acting as the app and its installation."""

    emu: GitHubEmulator
    app_id: int
    pem: str
    installation_id: int
    repo: str
    app: GitHub[AppAuthStrategy]
    installed: GitHub[AppInstallationAuthStrategy]

    def client_for(self, installation_id: int) -> GitHub[AppInstallationAuthStrategy]:
        strategy = AppInstallationAuthStrategy(self.app_id, self.pem, installation_id)
        return GitHub(strategy, base_url=self.emu.api_url)


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[Hub]:
    with GitHubEmulator(tmp_path / "github") as emu:
        app_id = next(APP_IDS)
        pem = emu.add_app(app_id)
        installation_id = emu.add_installation(app_id, "octo")
        repo = emu.add_repo("octo", "hello", FILES, installation_id)
        emu.set_permission(repo, "alice", "write")
        app = GitHub(AppAuthStrategy(app_id, pem), base_url=emu.api_url)
        installed = GitHub(
            AppInstallationAuthStrategy(app_id, pem, installation_id), base_url=emu.api_url
        )
        yield Hub(emu, app_id, pem, installation_id, repo, app, installed)
