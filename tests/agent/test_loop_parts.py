"""The loop's pure parts: stuck detection, condensation and middle cuts."""

from __future__ import annotations

from typing import Any

from workers.agent.condense import condense
from workers.agent.stuck import StepOutcome, StuckDetector
from workers.agent.tools.observation import cut_middle


def outcome(action: str, result: str = "ok", is_error: bool = False) -> StepOutcome:
    return StepOutcome(action, result, is_error)


def test_same_action_and_result_three_times() -> None:
    detector = StuckDetector(repeats=3)
    assert detector.record(outcome("ls")) is None
    assert detector.record(outcome("ls")) is None
    assert "same action" in (detector.record(outcome("ls")) or "")


def test_same_action_with_new_results_is_progress() -> None:
    detector = StuckDetector(repeats=3)
    assert all(detector.record(outcome("pytest", str(n))) is None for n in range(5))


def test_same_error_from_different_actions() -> None:
    detector = StuckDetector(repeats=3)
    for command in ("a", "b"):
        assert detector.record(outcome(command, "Error: no such file", True)) is None
    assert "same error" in (detector.record(outcome("c", "Error: no such file", True)) or "")


def test_a_b_a_b_alternation() -> None:
    detector = StuckDetector(repeats=3)
    verdicts = [detector.record(outcome(a)) for a in "ababab"]
    assert verdicts[:5] == [None] * 5 and "alternated" in (verdicts[5] or "")


def test_reset_forgets_history() -> None:
    detector = StuckDetector(repeats=2)
    detector.record(outcome("x"))
    detector.reset()
    assert detector.record(outcome("x")) is None


def test_condense_elides_old_long_observations_only() -> None:
    long = "x" * 1000
    messages: list[dict[str, Any]] = [{"role": "system", "content": long}]
    for n in range(4):
        messages.append({"role": "assistant", "content": long})
        messages.append({"role": "tool", "tool_call_id": str(n), "content": long + str(n)})
    messages.append({"role": "user", "content": "<tool_response>\nshort\n</tool_response>"})
    removed = condense(messages, keep_recent=2)
    tools = [m for m in messages if m["role"] == "tool"]
    # The last two observations are the short user turn and the fourth tool result.
    note = len("[older tool output elided to fit the context window (1001 characters)]")
    assert removed == 3 * (1001 - note)
    assert all("elided" in m["content"] for m in tools[:3])
    assert tools[3]["content"].endswith("3")
    assert messages[0]["content"] == long and messages[1]["content"] == long


def test_cut_middle_reports_the_cut() -> None:
    text = "HEAD" + "m" * 1000 + "TAIL"
    cut = cut_middle(text, 100)
    assert cut.startswith("HEAD") and cut.endswith("TAIL")
    assert "908 characters cut" in cut
    assert cut_middle("short", 100) == "short"
