"""A reasoning model behind the whole app: its reasoning goes back to the server in the field the
server reads, is kept in the trajectory for people who debug a run, and never reaches GitHub."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from tests.e2e.conftest import MakeHarness
from tests.e2e.harness import REPO, fix_add_script
from tests.model_server import VLLM, Reply

pytestmark = [pytest.mark.docker, pytest.mark.slow]

MODEL = "Qwen/Qwen3.6-35B-A3B-FP8"
THOUGHT = "PRIVATE-THOUGHT: the bug is the minus sign in add."


def test_reasoning_stays_between_the_model_and_the_trajectory(make_harness: MakeHarness) -> None:
    script = [
        Reply(text, reasoning=THOUGHT, expect_reasoning_back=n > 0)
        for n, text in enumerate(fix_add_script())
    ]
    config = replace(
        VLLM, model=MODEL, max_model_len=65_536, reasoning_parser=True, think_in_prompt=True
    )
    h = make_harness(script, config=config, env={"MODEL_NAME": MODEL})
    issue = h.emulator.add_issue(REPO, "add() subtracts", "It does.", "watcher")
    h.label(issue)
    h.tracking_says(issue, "Opened #")
    assert h.model.failures == [] and h.model.refused == [] and h.model.remaining == 0
    assert h.model.requests[-1]["chat_template_kwargs"] == {"preserve_thinking": True}
    on_github = json.dumps(
        [h.emulator.comments(REPO), h.emulator.pulls(REPO), h.emulator.check_runs(REPO)]
    )
    assert "PRIVATE-THOUGHT" not in on_github
    (trajectory,) = (h.root / "data" / "trajectories").glob("*.jsonl")
    assert "PRIVATE-THOUGHT" in trajectory.read_text()
