"""Per-repository trigger labels, read from each repository's `.github/qwen-fix.yml`."""

from __future__ import annotations

import base64
import time

import structlog
from githubkit.exception import RequestFailed

from bot.github import GitHubApp
from bot.repo_config import CONFIG_PATH, RepoConfigError, parse_repo_config

log = structlog.get_logger("qwen_fix.repo_labels")

TTL = 60.0
"""Seconds a repository's label is trusted; an edited config counts within a minute."""


class RepoLabels:
    """The label a repository's config sets, cached briefly; None where it sets none."""

    def __init__(self) -> None:
        self._cache: dict[str, tuple[str | None, float]] = {}

    async def label(self, github: GitHubApp, installation_id: int, repository: str) -> str | None:
        cached = self._cache.get(repository)
        if cached is not None and time.monotonic() - cached[1] < TTL:
            return cached[0]
        label = await self._read(github, installation_id, repository)
        self._cache[repository] = (label, time.monotonic())
        return label

    async def _read(self, github: GitHubApp, installation_id: int, repository: str) -> str | None:
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
            config = parse_repo_config(base64.b64decode(content).decode(errors="replace"))
        except RepoConfigError:
            # The worker reports a broken config on the issue; here it just sets no label.
            log.info("repo_labels.invalid_config", repo=repository)
            return None
        return config.label
