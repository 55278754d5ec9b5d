"""The agent against servers as strict and quirky as real vLLM and SGLang, over a real sandbox.

Windows that refuse one token too many, Qwen's own token counts, reasoning fields that must go
back where they came from, and every reported way servers garble tool calls. Each test uses the
scripted server's VLLM or SGLANG preset (tests/model_server/config.py), never the lenient one.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import docker
import pytest

from tests.agent.repo import TEST_COMMAND, make_buggy_repo
from tests.agent.sandboxes import docker_sandbox
from tests.agent.xml import turn
from tests.model_server import (
    CALLS_IN_CONTENT,
    MALFORMED_PARAMETER,
    SCHEMALESS_VALUES,
    SGLANG,
    VLLM,
    Reply,
    ScriptedModelServer,
    ServerConfig,
)
from tests.solve.test_loop_paths import EDIT, ISSUE, SUBMIT, StartServer
from workers.agent.loop import AgentConfig, AgentResult, Task, run_agent
from workers.agent.model import ModelClient, ModelConfig

pytestmark = pytest.mark.docker

WINDOW = 32_768
CODE_LINE = "def add(a, b):  # returns the sum of a and b, as the docstring says"


def listing(n: int) -> str:
    """About 27,000 characters of code (each listing its own): cut to the observation limit."""
    return f"yes '{CODE_LINE} ({n})' | head -n 400"


REASONING_MODEL = "Qwen/Qwen3.6-35B-A3B-FP8"
THOUGHT = "I read on."


async def run(
    server: ScriptedModelServer,
    docker_client: docker.DockerClient,
    sandbox_image: str,
    tmp_path: Path,
    config: AgentConfig | None = None,
    *,
    task: Task = ISSUE,
    **model: Any,
) -> AgentResult:
    repo = make_buggy_repo(tmp_path)
    settings = {"timeout": 20.0, "max_retries": 0, "backoff_initial": 0.01} | model
    settings.setdefault("model", server.config.model)
    client = ModelClient(ModelConfig(base_url=server.base_url, **settings))
    async with client, docker_sandbox(docker_client, sandbox_image, repo) as sandbox:
        return await run_agent(
            task, sandbox, client, config or AgentConfig(), trajectory=tmp_path / "run.jsonl"
        )


def events(tmp_path: Path, kind: str) -> list[dict[str, Any]]:
    lines = (tmp_path / "run.jsonl").read_text().splitlines()
    return [event for line in lines if (event := json.loads(line))["type"] == kind]


def long_run(reasoning: bool = False) -> list[Reply]:
    """Ten big listings, then the fix: far more than the window holds at once."""
    script = [
        Reply(
            turn("Look.", "bash", command=listing(n)), reasoning="I read on." if reasoning else None
        )
        for n in range(10)
    ]
    script += [Reply(EDIT), Reply(SUBMIT), Reply(SUBMIT)]
    if reasoning:
        # From the second turn on, the server checks that earlier reasoning came back.
        script = [script[0]] + [replace(turn, expect_reasoning_back=True) for turn in script[1:]]
    return script


@pytest.mark.parametrize("preset", [VLLM, SGLANG], ids=["vllm", "sglang"])
async def test_a_long_run_at_a_32k_window_condenses_in_time_and_is_never_refused(
    scripted_server: StartServer,
    docker_client: docker.DockerClient,
    sandbox_image: str,
    tmp_path: Path,
    preset: ServerConfig,
) -> None:
    server = scripted_server(long_run(), config=replace(preset, max_model_len=WINDOW))
    result = await run(server, docker_client, sandbox_image, tmp_path)
    assert server.failures == [] and server.refused == []
    assert result.exit_status == "submitted", result.reason
    assert "+    return a + b" in result.diff
    assert events(tmp_path, "condensed"), "the run never condensed"
    (start,) = events(tmp_path, "start")
    assert (start["window"], start["output_reserve"]) == (WINDOW, WINDOW // 4)
    # Every request asked for no more than fits: the server would have refused otherwise.
    assert all(body["max_tokens"] <= WINDOW // 4 for body in server.requests)


@pytest.mark.parametrize(
    ("preset", "field"),
    [(VLLM, "reasoning"), (SGLANG, "reasoning_content")],
    ids=["vllm", "sglang"],
)
async def test_a_reasoning_model_gets_its_reasoning_back_where_its_server_reads_it(
    scripted_server: StartServer,
    docker_client: docker.DockerClient,
    sandbox_image: str,
    tmp_path: Path,
    preset: ServerConfig,
    field: str,
) -> None:
    config = replace(
        preset, max_model_len=WINDOW, reasoning_parser=True, model=REASONING_MODEL,
        think_in_prompt=True,
    )  # fmt: skip
    server = scripted_server(long_run(reasoning=True), config=config)
    result = await run(server, docker_client, sandbox_image, tmp_path)
    assert server.failures == [] and server.refused == []
    assert result.exit_status == "submitted", result.reason
    assert events(tmp_path, "condensed")
    last = server.requests[-1]
    assert last["chat_template_kwargs"] == {"preserve_thinking": True}
    assert (last["temperature"], last["top_p"], last["top_k"]) == (0.6, 0.95, 20)
    assistant = [m for m in last["messages"] if m["role"] == "assistant"]
    assert [m.get(field, "").strip() for m in assistant[:10]] == [THOUGHT] * 10, assistant[0]
    # Recorded in the trajectory, for people; never anywhere else.
    steps = events(tmp_path, "step")
    assert steps[0]["messages"][0][field].strip() == THOUGHT


async def test_calls_left_in_content_are_run_from_the_text(
    scripted_server: StartServer, docker_client: docker.DockerClient, sandbox_image: str,
    tmp_path: Path,
) -> None:  # fmt: skip
    script = [Reply(EDIT, quirk=CALLS_IN_CONTENT), Reply(SUBMIT), Reply(SUBMIT)]
    server = scripted_server(script, config=VLLM)
    result = await run(server, docker_client, sandbox_image, tmp_path)
    assert server.failures == [] and result.exit_status == "submitted", result.reason
    assert "+    return a + b" in result.diff


async def test_a_malformed_parameter_that_drops_every_call_gets_a_precise_error(
    scripted_server: StartServer, docker_client: docker.DockerClient, sandbox_image: str,
    tmp_path: Path,
) -> None:  # fmt: skip
    script = [
        Reply(EDIT, quirk=MALFORMED_PARAMETER),
        Reply(EDIT, expect_in_last_message="is not a well-formed tag"),
        Reply(SUBMIT),
        Reply(SUBMIT),
    ]
    server = scripted_server(script, config=VLLM)
    result = await run(server, docker_client, sandbox_image, tmp_path)
    assert server.failures == [] and result.exit_status == "submitted", result.reason
    assert "+    return a + b" in result.diff


async def test_a_reply_cut_at_the_output_limit_is_never_run(
    scripted_server: StartServer, docker_client: docker.DockerClient, sandbox_image: str,
    tmp_path: Path,
) -> None:  # fmt: skip
    big_file = "\n".join(f"def f{n}(x):\n    return x * {n}\n" for n in range(400))
    create = turn("Write it.", "str_replace_editor", command="create", path="big.py",
                  file_text=big_file)  # fmt: skip
    script = [
        Reply(create),
        Reply(EDIT, expect_in_last_message="cut off at the output token limit"),
        Reply(SUBMIT),
        Reply(SUBMIT),
    ]
    server = scripted_server(script, config=VLLM)
    result = await run(server, docker_client, sandbox_image, tmp_path, max_tokens=1500)
    assert server.failures == [] and result.exit_status == "submitted", result.reason
    first = server.requests[0]
    assert first["max_tokens"] == 1500
    assert "big.py" not in result.diff  # the truncated file was never written
    assert "+    return a + b" in result.diff


async def test_sglang_values_read_regardless_of_the_schema_are_taken_as_text(
    scripted_server: StartServer, docker_client: docker.DockerClient, sandbox_image: str,
    tmp_path: Path,
) -> None:  # fmt: skip
    """SGLang before PR #16744 turned a string-typed `true` into a boolean and `1000` into an
    integer; the schema says text, so text it is."""
    script = [
        Reply(turn("Check.", "bash", command="true"), quirk=SCHEMALESS_VALUES),
        Reply(turn("Insert.", "str_replace_editor", command="insert", path="calc.py",
                   insert_line="0", new_str="1000"), quirk=SCHEMALESS_VALUES,
              expect_in_last_message="[exit code 0]"),
        Reply(EDIT, expect_in_last_message="Inserted"),
        Reply(SUBMIT),
        Reply(SUBMIT),
    ]  # fmt: skip
    server = scripted_server(script, config=SGLANG)
    result = await run(server, docker_client, sandbox_image, tmp_path)
    assert server.failures == [] and result.exit_status == "submitted", result.reason
    assert "+1000\n" in result.diff


async def test_without_a_tool_parser_the_agent_asks_for_text_and_parses_it(
    scripted_server: StartServer, docker_client: docker.DockerClient, sandbox_image: str,
    tmp_path: Path,
) -> None:  # fmt: skip
    """vLLM started without --enable-auto-tool-choice refuses `tool_choice: "auto"` with a 400;
    the tools still reach the prompt with `tool_choice: "none"`, and the calls come as text."""
    server = scripted_server([EDIT, SUBMIT, SUBMIT], config=replace(VLLM, tool_parser=False))
    result = await run(server, docker_client, sandbox_image, tmp_path)
    assert server.failures == [] and result.exit_status == "submitted", result.reason
    assert len(server.refused) == 1 and "tool choice" in server.refused[0].message
    assert [body.get("tool_choice") for body in server.requests] == ["auto"] + ["none"] * 3


async def test_a_window_the_server_did_not_tell_is_learnt_from_its_refusal(
    scripted_server: StartServer, docker_client: docker.DockerClient, sandbox_image: str,
    tmp_path: Path,
) -> None:  # fmt: skip
    """Behind a gateway that lists models without `max_model_len`, the agent assumes the
    model's native window until the server refuses; then it fits the window the refusal names,
    and asks once more."""
    config = replace(VLLM, max_model_len=16_384, report_window=False)
    server = scripted_server([EDIT, SUBMIT, SUBMIT], config=config)
    result = await run(server, docker_client, sandbox_image, tmp_path)
    assert server.failures == [] and result.exit_status == "submitted", result.reason
    assert len(server.refused) == 1
    assert [body["max_tokens"] for body in server.requests] == [16_384] + [4_096] * 3
    (refusal,) = events(tmp_path, "context_refused")
    assert "16384" in refusal["error"]


async def test_a_task_that_cannot_fit_stops_with_a_reason_and_sends_nothing_too_long(
    scripted_server: StartServer, docker_client: docker.DockerClient, sandbox_image: str,
    tmp_path: Path,
) -> None:  # fmt: skip
    huge = Task(ISSUE.title, "Log:\n" + "0123456789\n" * 20_000, "", TEST_COMMAND)
    server = scripted_server([EDIT, SUBMIT, SUBMIT], config=replace(VLLM, max_model_len=WINDOW))
    result = await run(server, docker_client, sandbox_image, tmp_path, task=huge)
    assert result.exit_status == "context_exhausted"
    assert "no longer fits the model's 32,768-token window" in result.reason
    assert server.refused == [] and server.requests == []
