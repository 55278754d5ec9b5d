"""The GitHub client over connections GitHub drops (the emulator's faults): a request that
cannot do a write twice is sent again; a POST whose answer was lost is not."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from githubkit.exception import RequestError

from bot.github import GitHubApp, SharedTransport
from tests.github_emulator.emulator import GitHubEmulator
from tests.github_emulator.faults import Fault

APP_ID = 77
REPO = "octo-org/widgets"
ISSUES = "/api/v3/repos/octo-org/widgets/issues"


@pytest.fixture
def emulator(tmp_path: Path) -> Iterator[GitHubEmulator]:
    with GitHubEmulator(tmp_path / "github") as emulator:
        yield emulator


@pytest.fixture
async def app(emulator: GitHubEmulator) -> AsyncIterator[tuple[GitHubApp, int]]:
    key = emulator.add_app(APP_ID)
    installation = emulator.add_installation(APP_ID, "octo-org", account_type="Organization")
    emulator.add_repo("octo-org", "widgets", {"README.md": "widgets\n"}, installation)
    github = GitHubApp(APP_ID, key, emulator.api_url, transport=SharedTransport(backoff=0.01))
    yield github, installation
    await github.close()


async def test_a_read_whose_connection_drops_is_sent_again(
    emulator: GitHubEmulator, app: tuple[GitHubApp, int]
) -> None:
    github, installation = app
    number = emulator.add_issue(REPO, "Widgets break", "They do.", "watcher")
    drop = emulator.faults.add(Fault("GET", rf"{ISSUES}/\d+", drop=True, times=2))
    client = await github.installation(installation)
    issue = await client.rest.issues.async_get("octo-org", "widgets", number)
    assert issue.parsed_data.title == "Widgets break"
    assert drop.hits == 2


async def test_a_post_whose_answer_was_lost_is_not_sent_twice(
    emulator: GitHubEmulator, app: tuple[GitHubApp, int]
) -> None:
    github, installation = app
    number = emulator.add_issue(REPO, "Widgets break", "They do.", "watcher")
    emulator.faults.add(Fault("POST", rf"{ISSUES}/\d+/comments", drop=True))
    client = await github.installation(installation)
    with pytest.raises(RequestError):
        await client.rest.issues.async_create_comment("octo-org", "widgets", number, body="hi")
    assert [c["body"] for c in emulator.comments(REPO, number)] == ["hi"]  # done once, not twice


async def test_an_unreachable_github_fails_the_request_after_the_retries(
    emulator: GitHubEmulator, app: tuple[GitHubApp, int]
) -> None:
    github, installation = app
    number = emulator.add_issue(REPO, "Widgets break", "They do.", "watcher")
    client = await github.installation(installation)
    emulator.stop()  # refused connections: nothing was sent
    with pytest.raises(RequestError):
        await client.rest.issues.async_create_comment("octo-org", "widgets", number, body="hi")
    assert emulator.comments(REPO, number) == []
