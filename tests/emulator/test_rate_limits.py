"""GitHub's primary rate limit as the emulator keeps it: every API answer carries the
`x-ratelimit-*` headers, per credential, and a caller past its limit gets GitHub's 403."""

from __future__ import annotations

import httpx

from tests.emulator.conftest import Hub


def test_each_answer_says_what_is_left_for_that_credential(hub: Hub) -> None:
    first = hub.installed.rest.repos.get("octo", "hello")
    second = hub.installed.rest.repos.get("octo", "hello")
    headers = [first.headers, second.headers]
    assert [h["x-ratelimit-limit"] for h in headers] == ["5000", "5000"]
    left = [int(h["x-ratelimit-remaining"]) for h in headers]
    assert left[1] == left[0] - 1
    assert int(second.headers["x-ratelimit-used"]) == 5000 - left[1]
    assert second.headers["x-ratelimit-resource"] == "core"
    assert int(second.headers["x-ratelimit-reset"]) > 0
    # The app's JWT is another credential with a count of its own.
    for _ in range(5):
        last = hub.installed.rest.repos.get("octo", "hello")
    app = hub.app.rest.apps.get_authenticated()
    assert int(app.headers["x-ratelimit-used"]) < int(last.headers["x-ratelimit-used"])
    # Anonymous callers get GitHub's 60.
    anonymous = httpx.get(f"{hub.emu.api_url}/repos/octo/hello")
    assert anonymous.headers["x-ratelimit-limit"] == "60"


def test_past_the_limit_the_answer_is_githubs_403_until_the_reset(hub: Hub) -> None:
    token = hub.emu.installation_token(hub.installation_id)
    headers = {"Authorization": f"token {token}"}
    hub.emu.rate_limits.limit = 3
    answers = [httpx.get(f"{hub.emu.api_url}/repos/octo/hello", headers=headers) for _ in range(4)]
    assert [a.status_code for a in answers] == [200, 200, 200, 403]
    refused = answers[-1]
    assert "API rate limit exceeded" in refused.json()["message"]
    assert refused.headers["x-ratelimit-remaining"] == "0"
    assert refused.headers["x-ratelimit-reset"] == answers[0].headers["x-ratelimit-reset"]
    # Another credential (the app's JWT) is not affected.
    assert hub.app.rest.apps.get_authenticated().status_code == 200
