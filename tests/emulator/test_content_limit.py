"""GitHub's secondary rate limit on content creation, opt-in per emulator."""

from __future__ import annotations

import httpx

from tests.emulator.conftest import Hub


def post_comment(hub: Hub, number: int, token: str) -> httpx.Response:
    return httpx.post(
        f"{hub.emu.api_url}/repos/octo/hello/issues/{number}/comments",
        headers={"Authorization": f"token {token}"},
        json={"body": "On it"},
    )


def test_creations_over_the_limit_get_403_with_retry_after(hub: Hub) -> None:
    number = hub.emu.add_issue(hub.repo, "Crash", None, "alice")
    token = hub.emu.installation_token(hub.installation_id)
    hub.emu.content_limit = 2
    assert [post_comment(hub, number, token).status_code for _ in range(2)] == [201, 201]
    limited = post_comment(hub, number, token)
    assert limited.status_code == 403
    assert "secondary rate limit" in limited.json()["message"]
    assert 0 < int(limited.headers["retry-after"]) <= 60
    hub.emu.commit_files(hub.repo, "qwen-fix/1", {"a.txt": "a\n"})
    pull = httpx.post(
        f"{hub.emu.api_url}/repos/octo/hello/pulls",
        headers={"Authorization": f"token {token}"},
        json={"title": "Fix", "head": "qwen-fix/1", "base": "main"},
    )
    assert pull.status_code == 403 and hub.emu.pulls(hub.repo) == []
    assert len(hub.emu.comments(hub.repo, number)) == 2


def test_there_is_no_limit_by_default(hub: Hub) -> None:
    number = hub.emu.add_issue(hub.repo, "Crash", None, "alice")
    token = hub.emu.installation_token(hub.installation_id)
    assert hub.emu.content_limit is None
    assert {post_comment(hub, number, token).status_code for _ in range(12)} == {201}
