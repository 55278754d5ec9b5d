"""GitHub on a bad day, end to end: 502s, secondary rate limits (403 and 429 with
`retry-after`), slow answers and dropped connections, and then an outage. Jobs finish, or fail
with a clear comment once GitHub answers again; the receiver keeps answering deliveries, and
those it could not act on are asked for again."""

from __future__ import annotations

import time

import pytest

from tests.e2e.conftest import MakeHarness
from tests.e2e.harness import REPO, fix_add_script
from tests.github_emulator.faults import Fault
from tests.reliability.conftest import failed_comment, until

pytestmark = [pytest.mark.docker, pytest.mark.slow]

API = "/api/v3/repos/octo-org/calc"


def test_a_job_finishes_through_502s_rate_limits_slow_answers_and_dropped_connections(
    make_harness: MakeHarness,
) -> None:
    h = make_harness(fix_add_script())
    faults = [
        Fault("GET", rf"{API}/issues/\d+", status=502, times=2),
        Fault("GET", API, drop=True),
        Fault("POST", rf"{API}/issues/\d+/comments", status=403, retry_after=1, times=2),
        Fault("GET", rf"{API}/issues/\d+/comments", delay=3.0),
        Fault("PATCH", rf"{API}/issues/comments/\d+", status=429, retry_after=1),
        Fault("PATCH", rf"{API}/issues/comments/\d+", drop=True),
        Fault("POST", rf"{API}/pulls", status=502, times=2),
        Fault("GET", rf"{API}/pulls", delay=2.0),
        Fault("POST", rf"{API}/check-runs", status=403, retry_after=2),
    ]
    for fault in faults:
        h.emulator.faults.add(fault)
    issue = h.emulator.add_issue(REPO, "add() subtracts", "It does.", "watcher")
    h.label(issue)
    answers = []
    deadline = time.monotonic() + 180
    while "Opened #" not in (h.tracking(issue) or ""):
        assert time.monotonic() < deadline, h.output()
        assert " failed, " not in (h.root / "worker.log").read_text(), h.output()
        # Deliveries keep being answered at once while the job meets GitHub's bad day.
        started = time.monotonic()
        delivery = h.send("issues", "opened", sender="watcher", issue=issue)
        answers.append((delivery["status_code"], time.monotonic() - started))
        time.sleep(0.5)
    injected = sum(f.hits for f in faults)
    slowest = max(seconds for _, seconds in answers)
    print(
        f"\ngithub: {injected} faults injected ({', '.join(str(f.hits) for f in faults)}), "
        f"1 job finished, {len(h.emulator.pulls(REPO))} pull request, "
        f"{len(answers)} deliveries answered meanwhile, slowest {slowest * 1000:.0f} ms"
    )
    assert all(f.hits == (f.times or 1) for f in faults), [(f.path, f.hits) for f in faults]
    assert len(h.emulator.pulls(REPO)) == 1
    assert len(h.bot_comments(issue)) == 1  # one tracking comment, though its POST was refused
    assert len(h.emulator.check_runs(REPO)) == 1
    assert all(status == 200 for status, _ in answers), answers
    assert slowest < 1.0, answers


def test_through_an_outage_a_job_fails_clearly_and_a_lost_delivery_is_asked_for_again(
    make_harness: MakeHarness,
) -> None:
    h = make_harness(fix_add_script(), per_conversation=True)
    h.emulator.set_permission(REPO, "maintainer2", "write")
    outage = Fault("*", r"/api/v3/.*", status=502, times=None)
    began: list[float] = []

    def go_down(method: str, path: str) -> None:
        h.emulator.faults.add(outage)
        began.append(time.monotonic())

    # GitHub goes down as the first job opens its pull request.
    h.emulator.faults.add(Fault("POST", rf"{API}/pulls", status=502, before=go_down))
    first = h.emulator.add_issue(REPO, "add() subtracts", "It does.", "watcher")
    h.label(first)
    until(h, "the outage", lambda: began)
    second = h.emulator.add_issue(REPO, "add() still subtracts", "It does.", "watcher")
    sent = time.monotonic()
    h.emulator.add_label(REPO, "qwen-fix", issue=second)
    lost = h.send("issues", "labeled", sender="maintainer2", issue=second, label="qwen-fix")
    answered = time.monotonic() - sent
    time.sleep(max(0.0, 25.0 - (time.monotonic() - began[0])))
    h.emulator.faults.clear()
    back = time.monotonic()

    failed = until(h, "the first job's last word", lambda: failed_comment(h.tracking(first)))
    said = time.monotonic() - back
    until(h, "the lost delivery's job", lambda: "Opened #" in (h.tracking(second) or ""))
    heads = [p["head"] for p in h.emulator.pulls(REPO)]
    print(
        f"\ngithub: outage of 25 s ({outage.hits} requests answered 502); job 1 failed, its "
        f"comment written {said:.1f} s after GitHub came back; a delivery during the outage "
        f"answered {lost['status_code']} in {answered:.1f} s and was acted on after it; "
        f"pull requests: {heads}"
    )
    assert "GitHub did not answer: 502 on POST /api/v3/repos/octo-org/calc/pulls" in failed
    assert lost["status_code"] == 503
    assert answered < 10.0  # GitHub gives a delivery 10 s
    assert heads == [f"qwen-fix/issue-{second}"]
