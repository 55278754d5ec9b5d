"""The model server on a bad day, end to end: bursts of 5xx, requests that hang past the
client's timeout, a server that goes away mid-run (and comes back, or not), and 200s that are
no use (no body, half a body, an empty reply).

Every part is real (the receiver and worker processes, Redis, Docker, the GitHub emulator);
the scripted model server plays current vLLM and injects the faults as turns of its script,
so each test knows exactly how many requests the faults may cost. Retries are bounded: every
fault costs one request, and a server gone for good is given up on after MODEL max_retries,
with a clear reason on the issue and the change so far kept in a draft pull request.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from tests.e2e.conftest import MakeHarness
from tests.e2e.harness import FILES, REPO, Harness, fix_add_script
from tests.model_server import VLLM, BadBody, Fail, Outage, Reply, Turn
from workers.agent.loop import EMPTY_REPLY

pytestmark = [pytest.mark.docker, pytest.mark.slow]

FIXED = FILES["calc.py"].replace("a - b", "a + b")
PLAN, EDIT, TICK, TEST, SUBMIT, CONFIRM = fix_add_script()
MAX_RETRIES = 5
"""ModelConfig.max_retries, which the worker uses (no setting changes it)."""


def start_job(h: Harness) -> tuple[int, str]:
    issue = h.emulator.add_issue(REPO, "add() subtracts", "`add(2, 3)` returns -1.", "watcher")
    delivery = h.label(issue)
    assert delivery["status_code"] == 202, delivery
    return issue, str(json.loads(delivery["response"]["payload"])["detail"])


def retries(h: Harness) -> list[str]:
    """The worker's `model.retrying` lines: one per retry the model client made."""
    lines = (Path(h.root) / "worker.log").read_text(errors="replace").splitlines()
    events = [json.loads(line) for line in lines if line.startswith("{")]
    return [e["detail"] for e in events if e.get("event") == "model.retrying"]


def lost_diffs(h: Harness, issue: int) -> int:
    """1 when the agent's fix did not reach the issue's branch, else 0."""
    return int(h.emulator.file_at(REPO, f"qwen-fix/issue-{issue}", "calc.py") != FIXED)


def opened(h: Harness, issue: int, job_id: str) -> dict[str, object]:
    """The job's pull request, once the tracking comment links it; checked to be a ready one."""
    h.tracking_says(issue, "Opened #")
    [pull] = h.emulator.pulls(REPO)
    assert pull["draft"] is False and "✅ `python3 -m pytest -q` passed." in str(pull["body"])
    assert h.job_result(job_id)["state"] == "opened"
    assert h.model.failures == [] and h.model.remaining == 0
    return pull


def test_a_burst_of_5xx_then_recovery_opens_the_pull_request(make_harness: MakeHarness) -> None:
    engine = "EngineCore encountered an issue. See stack trace (above) for the root cause."
    burst: list[Turn] = [Fail(500, engine)] * 3
    gateway = Fail(503, "Service Unavailable", retry_after=2)
    script = [*burst, PLAN, EDIT, gateway, TICK, TEST, SUBMIT, CONFIRM]
    h = make_harness(script, config=VLLM)
    issue, job_id = start_job(h)
    pull = opened(h, issue, job_id)

    seen = retries(h)
    # Bounded: each fault cost exactly one more request, and one retry line says so.
    assert len(h.model.requests) == len(script)
    assert [line.split(": ", 1)[1].split(";")[0] for line in seen] == [
        "answered 500", "answered 500", "answered 500", "answered 503"
    ]  # fmt: skip
    # The backoff doubles through the burst; the gateway's Retry-After: 2 is waited for.
    assert [line.split("(attempt ")[1] for line in seen[:3]] == ["2 of 6)", "3 of 6)", "4 of 6)"]
    assert "answered 503; retrying in 2 s" in seen[3]
    print(
        f"\nmodel: 4 faults injected (3×500, 1×503 with Retry-After: 2), {len(seen)} retries, "
        f"{len(h.model.requests)} requests for {len(script) - 4} turns, 1 job finished "
        f"(#{pull['number']}), {lost_diffs(h, issue)} lost diffs"
    )
    assert lost_diffs(h, issue) == 0


def test_requests_that_hang_past_the_timeout_are_retried_and_the_run_finishes(
    make_harness: MakeHarness,
) -> None:
    timeout = 5
    hang = Reply(EDIT, delay=60)  # the client gives up on it after MODEL_TIMEOUT
    script = [PLAN, hang, hang, EDIT, TICK, TEST, SUBMIT, CONFIRM]
    h = make_harness(script, config=VLLM, env={"MODEL_TIMEOUT": str(timeout)})
    issue, job_id = start_job(h)
    pull = opened(h, issue, job_id)

    seen = retries(h)
    assert len(h.model.requests) == len(script)
    assert len(seen) == 2
    assert all(f"did not answer within {timeout} s (MODEL_TIMEOUT)" in line for line in seen)
    print(
        f"\nmodel: 2 requests hung past MODEL_TIMEOUT={timeout} s, {len(seen)} retries, "
        f"{len(h.model.requests)} requests for {len(script) - 2} turns, 1 job finished "
        f"(#{pull['number']}), {lost_diffs(h, issue)} lost diffs"
    )
    assert lost_diffs(h, issue) == 0


def test_a_server_that_goes_away_mid_run_and_comes_back_is_ridden_out(
    make_harness: MakeHarness,
) -> None:
    down = 5.0
    script = [PLAN, EDIT, Outage(back_after=down), TICK, TEST, SUBMIT, CONFIRM]
    h = make_harness(script, config=VLLM)
    issue, job_id = start_job(h)
    pull = opened(h, issue, job_id)

    seen = retries(h)
    kinds = Counter(line.split(": ", 1)[1].split(" (")[0].split(";")[0] for line in seen)
    assert h.model.outages == 1 and len(h.model.requests) == len(script)
    assert kinds["dropped the connection"] == 1  # the request in flight when it went
    assert kinds["refused the connection"] >= 1  # nothing listened for a while
    assert len(seen) <= MAX_RETRIES and sum(kinds.values()) == len(seen)
    print(
        f"\nmodel: 1 outage of {down:.0f} s mid-run (1 request reset, "
        f"{kinds['refused the connection']} connections refused), {len(seen)} retries, "
        f"{len(h.model.requests)} requests for {len(script) - 1} turns, 1 job finished "
        f"(#{pull['number']}), {lost_diffs(h, issue)} lost diffs"
    )
    assert lost_diffs(h, issue) == 0


def test_a_server_gone_for_good_fails_the_job_clearly_and_keeps_the_diff(
    make_harness: MakeHarness,
) -> None:
    script = [PLAN, EDIT, Outage()]
    h = make_harness(script, config=VLLM)
    issue, job_id = start_job(h)
    body = h.tracking_says(issue, "Could not finish")

    url = h.model.base_url
    reason = f"the model server at {url} (MODEL_BASE_URL) could not be reached: gave up after"
    assert reason in body
    assert f"gave up after {MAX_RETRIES} retries ({MAX_RETRIES + 1} attempts in" in body
    assert "the last attempt refused the connection (is it running?)" in body
    assert "To try again, comment `/qwen-fix retry`." in body
    [pull] = h.emulator.pulls(REPO)
    assert pull["draft"] is True and f"{h.emulator.web_url}/{REPO}/pull/{pull['number']}" in body
    assert "ended: model_error" in str(pull["body"])
    with pytest.raises(Exception, match="could not be reached"):
        h.job_result(job_id)  # the job failed, once: arq does not run it again
    h.wait_for("the sandbox to go", lambda: not h.sandboxes(job_id) or None, timeout=60)

    seen = retries(h)
    assert len(seen) == MAX_RETRIES and h.model.outages == 1
    assert len(h.model.requests) == len(script)
    print(
        f"\nmodel: 1 outage with no return after 2 turns, {len(seen)} retries "
        f"(bounded at {MAX_RETRIES}), 0 jobs finished, 1 job failed with the reason on the issue, "
        f"draft #{pull['number']} keeps the change, {lost_diffs(h, issue)} lost diffs"
    )
    assert lost_diffs(h, issue) == 0


def test_replies_that_are_no_use_are_retried_or_told_to_the_model_and_the_run_recovers(
    make_harness: MakeHarness,
) -> None:
    told = Reply(EDIT, expect_in_last_message=EMPTY_REPLY)
    script: list[Turn] = [
        BadBody("empty"), PLAN,
        BadBody("invalid_json"), "", told,
        BadBody("cut_off"), TICK, TEST, SUBMIT, CONFIRM,
    ]  # fmt: skip
    h = make_harness(script, config=VLLM)
    issue, job_id = start_job(h)
    pull = opened(h, issue, job_id)

    seen = retries(h)
    assert len(h.model.requests) == len(script)
    assert len(seen) == 3  # the three bodies; the empty reply went to the model instead
    assert "sent no chat completion: a 200 with an empty body, not JSON" in seen[0]
    assert "sent no chat completion: a 200 with '{" in seen[1]
    assert "dropped the connection (RemoteProtocolError: peer closed connection" in seen[2]
    print(
        f"\nmodel: 4 faults injected (1 empty body, 1 invalid JSON, 1 body cut off, "
        f"1 empty reply), {len(seen)} retries, 1 empty reply told to the model, "
        f"{len(h.model.requests)} requests for {len(script) - 4} turns, 1 job finished "
        f"(#{pull['number']}), {lost_diffs(h, issue)} lost diffs"
    )
    assert lost_diffs(h, issue) == 0


def test_a_model_that_only_sends_empty_replies_fails_clearly_and_keeps_the_diff(
    make_harness: MakeHarness,
) -> None:
    empties = 4  # AgentConfig.format_error_retries is 3: the fourth in a row ends the run
    script: list[Turn] = [PLAN, EDIT, *[""] * empties]
    h = make_harness(script, config=VLLM)
    issue, job_id = start_job(h)
    body = h.tracking_says(issue, "Could not finish")

    assert f"{empties} malformed replies: Your reply was empty" in body
    [pull] = h.emulator.pulls(REPO)
    assert pull["draft"] is True and f"/pull/{pull['number']}" in body
    with pytest.raises(Exception, match="malformed replies"):
        h.job_result(job_id)
    assert retries(h) == [] and len(h.model.requests) == len(script)
    print(
        f"\nmodel: {empties} empty replies in a row after 2 turns, 0 retries, "
        f"{empties - 1} told to the model, 0 jobs finished, 1 job failed with the reason on "
        f"the issue, draft #{pull['number']} keeps the change, {lost_diffs(h, issue)} lost diffs"
    )
    assert lost_diffs(h, issue) == 0
