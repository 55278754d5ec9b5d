"""Check runs through githubkit: create, update, list for a ref, and GitHub's output limit."""

from __future__ import annotations

import httpx
import pytest
from githubkit.exception import RequestFailed

from tests.emulator.conftest import Hub

LIMIT = 65535


def test_a_check_run_goes_from_in_progress_to_completed(hub: Hub) -> None:
    checks = hub.installed.rest.checks
    sha = hub.emu.branches(hub.repo)["main"]
    run = checks.create(
        "octo", "hello", name="qwen-fix", head_sha=sha, status="in_progress",
        external_id="job-1", output={"title": "Working", "summary": "Planning"},
    ).parsed_data  # fmt: skip
    assert (run.status, run.conclusion, run.head_sha) == ("in_progress", None, sha)
    assert run.app is not None and run.app.id == hub.app_id

    done = checks.update(
        "octo", "hello", run.id, conclusion="failure",
        output={"title": "1 test fails", "summary": "s" * LIMIT, "text": "t" * LIMIT},
    ).parsed_data  # fmt: skip
    assert (done.status, done.conclusion) == ("completed", "failure")
    assert done.completed_at is not None and done.output.text == "t" * LIMIT

    listed = checks.list_for_ref("octo", "hello", "main").parsed_data
    assert (listed.total_count, [r.id for r in listed.check_runs]) == (1, [run.id])
    (stored,) = hub.emu.check_runs(hub.repo)
    assert (stored["conclusion"], stored["external_id"]) == ("failure", "job-1")


@pytest.mark.parametrize("field", ["summary", "text"])
def test_output_over_65535_characters_is_refused(hub: Hub, field: str) -> None:
    # githubkit refuses such a body itself, so this goes out raw, as another client might.
    sha = hub.emu.branches(hub.repo)["main"]
    output = {"title": "Tests", "summary": "ok", field: "x" * (LIMIT + 1)}
    refused = httpx.post(
        f"{hub.emu.api_url}/repos/octo/hello/check-runs",
        headers={"Authorization": f"token {hub.emu.installation_token(hub.installation_id)}"},
        json={"name": "qwen-fix", "head_sha": sha, "output": output},
    )
    assert refused.status_code == 422
    message = refused.json()["message"]
    assert message.endswith(f"Only {LIMIT} characters are allowed; {LIMIT + 1} were supplied.")
    assert hub.emu.check_runs(hub.repo) == []


def test_listing_keeps_the_latest_run_per_name_unless_asked_for_all(hub: Hub) -> None:
    checks = hub.installed.rest.checks
    sha = hub.emu.branches(hub.repo)["main"]
    older = checks.create("octo", "hello", name="qwen-fix", head_sha=sha).parsed_data
    newer = checks.create("octo", "hello", name="qwen-fix", head_sha=sha).parsed_data
    latest = checks.list_for_ref("octo", "hello", sha).parsed_data
    assert [r.id for r in latest.check_runs] == [newer.id]
    every = checks.list_for_ref("octo", "hello", sha, filter_="all").parsed_data
    assert [r.id for r in every.check_runs] == [newer.id, older.id]
    with pytest.raises(RequestFailed) as unknown:
        checks.create("octo", "hello", name="qwen-fix", head_sha="0" * 40)
    assert unknown.value.response.status_code == 422
