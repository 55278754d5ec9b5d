"""The loop's less travelled paths, over a real sandbox and the scripted model server.

Context overflow and condensation, model server failures and timeouts (recovered or fatal),
the wall-time and token limits, and a plan-mode run.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import docker
import pytest

from tests.agent.repo import TEST_COMMAND, make_buggy_repo
from tests.agent.sandboxes import docker_sandbox
from tests.agent.xml import turn
from tests.model_server import VLLM, Fail, Reply, ScriptedModelServer
from workers.agent.loop import AgentConfig, AgentResult, Task, run_agent
from workers.agent.model import ModelClient, ModelConfig

pytestmark = pytest.mark.docker

StartServer = Callable[..., ScriptedModelServer]
ISSUE = Task("add() returns the wrong result", "`add(2, 3)` gives -1.", "", TEST_COMMAND)
EDIT = turn(
    "Fix it.",
    "str_replace_editor",
    command="str_replace",
    path="calc.py",
    old_str="    return a - b",
    new_str="    return a + b",
)
SUBMIT = turn("Done.", "submit", summary="add() now adds.")


async def run(
    server: ScriptedModelServer,
    docker_client: docker.DockerClient,
    sandbox_image: str,
    tmp_path: Path,
    config: AgentConfig,
    *,
    task: Task = ISSUE,
    **model: Any,
) -> AgentResult:
    repo = make_buggy_repo(tmp_path)
    settings = {"timeout": 10.0, "max_retries": 0, "backoff_initial": 0.01} | model
    client = ModelClient(ModelConfig(base_url=server.base_url, **settings))
    async with client, docker_sandbox(docker_client, sandbox_image, repo) as sandbox:
        return await run_agent(task, sandbox, client, config, trajectory=tmp_path / "run.jsonl")


def trajectory(tmp_path: Path) -> list[dict[str, Any]]:
    lines = (tmp_path / "run.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


async def test_context_overflow_condenses_and_still_submits(
    scripted_server: StartServer,
    docker_client: docker.DockerClient,
    sandbox_image: str,
    tmp_path: Path,
) -> None:
    # A 16K window (as vLLM enforces it, on Qwen-like counts): the task takes ~2,500 tokens and
    # each listing ~1,700, so the older listings are elided before the window fills.
    line = "def handler(request):  # dispatch the request to its handler"
    listing = [turn("Look.", "bash", command=f"yes '{line} {n}' | head -n 300") for n in range(6)]
    script = [*listing, EDIT, SUBMIT, Reply(SUBMIT, expect_in_last_message="+    return a + b")]
    server = scripted_server(script, config=replace(VLLM, max_model_len=16_384))
    config = AgentConfig(keep_recent_observations=1)
    result = await run(server, docker_client, sandbox_image, tmp_path, config, model=VLLM.model)
    assert server.failures == [] and server.refused == []
    assert result.exit_status == "submitted", result.reason
    assert "+    return a + b" in result.diff
    events = [line for line in trajectory(tmp_path) if line["type"] == "condensed"]
    elided = [event for event in events if event["characters"]]
    assert elided and elided[0]["tokens_after"] < elided[0]["tokens_before"]
    after = server.requests[elided[0]["step"]]["messages"]
    first = server.requests[0]["messages"]
    # The system prompt and the task survive; the first listing is elided; the newest is kept.
    assert after[:2] == first[:2]
    assert "elided" in after[3]["content"] and f"{line} 0" not in after[3]["content"]
    assert line in after[-1]["content"] and after[-2]["role"] == "assistant"
    assert server.requests[-1]["messages"][:2] == first[:2]


async def test_server_errors_are_retried_and_the_run_recovers(
    scripted_server: StartServer,
    docker_client: docker.DockerClient,
    sandbox_image: str,
    tmp_path: Path,
) -> None:
    script = [Fail(500), Fail(502), EDIT, Fail(503), SUBMIT, SUBMIT]
    server = scripted_server(script)
    result = await run(server, docker_client, sandbox_image, tmp_path, AgentConfig(), max_retries=2)
    assert result.exit_status == "submitted", result.reason
    assert (result.steps, result.usage.calls, len(server.requests)) == (3, 3, 6)


async def test_a_timed_out_request_is_retried_and_the_run_recovers(
    scripted_server: StartServer,
    docker_client: docker.DockerClient,
    sandbox_image: str,
    tmp_path: Path,
) -> None:
    server = scripted_server([Reply(EDIT, delay=1.5), EDIT, SUBMIT, SUBMIT])
    result = await run(
        server, docker_client, sandbox_image, tmp_path, AgentConfig(), timeout=0.5, max_retries=1
    )
    assert result.exit_status == "submitted", result.reason
    assert (result.steps, len(server.requests)) == (3, 4)


async def test_a_model_server_that_keeps_failing_ends_with_model_error_and_the_diff_kept(
    scripted_server: StartServer,
    docker_client: docker.DockerClient,
    sandbox_image: str,
    tmp_path: Path,
) -> None:
    server = scripted_server([EDIT, Reply(SUBMIT, delay=1.5), Fail(503)])
    result = await run(
        server, docker_client, sandbox_image, tmp_path, AgentConfig(), timeout=0.5, max_retries=1
    )
    assert result.exit_status == "model_error" and "503" in result.reason
    assert (result.steps, len(server.requests)) == (1, 3)
    assert "+    return a + b" in result.diff
    assert trajectory(tmp_path)[-1]["status"] == "model_error"


async def test_the_wall_time_limit_stops_a_slow_run_and_keeps_the_diff(
    scripted_server: StartServer,
    docker_client: docker.DockerClient,
    sandbox_image: str,
    tmp_path: Path,
) -> None:
    server = scripted_server([EDIT, Reply(SUBMIT, delay=8.0)])
    result = await run(server, docker_client, sandbox_image, tmp_path, AgentConfig(wall_time=1.5))
    assert result.exit_status == "time_limit" and "wall time" in result.reason
    # Cut at the limit, long before the 8 s reply (the margin absorbs a loaded CI machine).
    assert result.steps == 1 and 1.5 <= result.elapsed < 6.0
    assert "+    return a + b" in result.diff


async def test_the_token_limit_stops_the_run_before_the_next_call(
    scripted_server: StartServer,
    docker_client: docker.DockerClient,
    sandbox_image: str,
    tmp_path: Path,
) -> None:
    server = scripted_server([EDIT, SUBMIT, SUBMIT])
    result = await run(server, docker_client, sandbox_image, tmp_path, AgentConfig(max_tokens=500))
    assert result.exit_status == "token_limit"
    assert result.steps == 1 and server.remaining == 2
    spent = result.usage.billable_tokens
    assert spent >= 500 and f"spent {spent:,} tokens" in result.reason
    assert "+    return a + b" in result.diff


async def test_plan_mode_investigates_plans_and_edits_nothing(
    scripted_server: StartServer,
    docker_client: docker.DockerClient,
    sandbox_image: str,
    tmp_path: Path,
) -> None:
    plan = turn(
        "Plan.",
        "todo",
        command="set",
        items=[{"content": "Change `a - b` to `a + b` in calc.add", "status": "done"}],
    )
    script = [
        turn("Read.", "bash", command="grep -n 'a - b' calc.py"),
        Reply(EDIT, expect_in_last_message="6:    return a - b"),
        Reply(plan, expect_in_last_message="read-only"),
        SUBMIT,
        Reply(SUBMIT, expect_in_last_message="No changes, as expected"),
    ]
    server = scripted_server(script)
    task = Task(ISSUE.title, ISSUE.body, "", TEST_COMMAND, mode="plan")
    result = await run(server, docker_client, sandbox_image, tmp_path, AgentConfig(), task=task)
    assert server.failures == []
    assert result.exit_status == "submitted" and result.diff == ""
    assert [item.text for item in result.plan] == ["Change `a - b` to `a + b` in calc.add"]
    system = server.requests[0]["messages"][0]["content"]
    assert "Do not modify any file" in system
