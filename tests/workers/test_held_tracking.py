"""The tracking comment of a job waiting for a model slot (a pure renderer, tested directly)."""

from __future__ import annotations

from workers.tracking import MARKER, Held, Progress, render_tracking

STARTED = 1_700_000_000.0


def held(**changes: object) -> Progress:
    progress = Progress("Working on a fix", state="queued", started=STARTED)
    for name, value in changes.items():
        setattr(progress, name, value)
    return progress


def test_a_held_job_says_how_many_are_ahead() -> None:
    body = render_tracking(held(held=Held(ahead=3)), now=STARTED + 75)
    assert body == "\n".join(
        [
            MARKER,
            "⏳ **Working on a fix**",
            "",
            "Waiting for a free model slot, 3 ahead.",
            "",
            "<sub>1 min 15 s · 0 steps · 0 tokens</sub>",
        ]
    )


def test_a_held_job_says_when_the_model_server_is_busy() -> None:
    body = render_tracking(held(held=Held(ahead=0, busy=True)), now=STARTED + 4)
    assert (
        "Waiting for a free model slot, next in line. The model server is busy, so no new run "
        "starts until it has room.\n\n<sub>4 s"
    ) in body


def test_an_admitted_job_no_longer_says_it_waits() -> None:
    body = render_tracking(held(state="working", held=None), now=STARTED + 4)
    assert "Waiting" not in body
    assert body.startswith(f"{MARKER}\n🛠️ **Working on a fix**\n\n<sub>")


def test_a_job_that_stops_while_held_shows_only_its_end() -> None:
    progress = held(held=Held(ahead=2), state="failed", headline="Could not finish")
    progress.detail = "No model slot came free within 60 min (MODEL_QUEUE_TIMEOUT), …"
    body = render_tracking(progress, now=STARTED + 3600)
    assert "Waiting" not in body
    assert body.endswith("\n\nNo model slot came free within 60 min (MODEL_QUEUE_TIMEOUT), …")
