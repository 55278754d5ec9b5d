"""Per-repository trigger labels and branch prefixes, read from `.github/qwen-fix.yml`."""

from __future__ import annotations

import base64
import time

import structlog
from githubkit.exception import RequestFailed

from bot.github import GitHubApp
from bot.repo_config import CONFIG_PATH, RepoConfig, RepoConfigError, parse_repo_config

log = structlog.get_logger("qwen_fix.repo_labels")

TTL = 60.0
"""Seconds a repository's label is trusted; an edited config counts within a minute."""


class RepoLabels:
    """What the receiver needs of a repository's config, cached briefly: the label it sets
    (None where it sets none) and the prefix of the app's branches."""

    def __init__(self) -> None:
        self._cache: dict[str, tuple[RepoConfig | None, float]] = {}

    async def label(self, github: GitHubApp, installation_id: int, repository: str) -> str | None:
        config = await self.config(github, installation_id, repository)
        return None if config is None else config.label

    async def branch_prefix(
        self, github: GitHubApp, installation_id: int, repository: str
    ) -> str | None:
        """The config's branch prefix; None when there is no valid config."""
        config = await self.config(github, installation_id, repository)
        return None if config is None else config.branch_prefix

    async def config(
        self, github: GitHubApp, installation_id: int, repository: str
    ) -> RepoConfig | None:
        """The config of the default branch; None when there is none or it is invalid."""
        cached = self._cache.get(repository)
        if cached is not None and time.monotonic() - cached[1] < TTL:
            return cached[0]
        config = await self._read(github, installation_id, repository)
        self._cache[repository] = (config, time.monotonic())
        return config

    async def _read(
        self, github: GitHubApp, installation_id: int, repository: str
    ) -> RepoConfig | None:
        owner, name = repository.split("/", 1)
        client = await github.installation(installation_id)
        try:
            response = await client.rest.repos.async_get_content(owner, name, CONFIG_PATH)
        except RequestFailed as exc:
            if exc.response.status_code == 404:
                return None
            raise
        content = getattr(response.parsed_data, "content", None)
        if not isinstance(content, str):
            return None
        try:
            return parse_repo_config(base64.b64decode(content).decode(errors="replace"))
        except RepoConfigError:
            # The worker reports a broken config on the issue; here it just sets no label.
            log.info("repo_labels.invalid_config", repo=repository)
            return None
