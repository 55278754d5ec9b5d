"""Reasoning fields, inline thinking, and the check that reasoning comes back where it is read."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import httpx

from tests.model_server import SGLANG, VLLM, Reply, ScriptedModelServer, ServerConfig

BASH = {
    "type": "function",
    "function": {
        "name": "bash",
        "parameters": {"type": "object", "properties": {"command": {"type": "string"}}},
    },
}
CALL = (
    "<tool_call>\n<function=bash>\n<parameter=command>\nls\n</parameter>\n</function>\n</tool_call>"
)
PLAN = "The tests fail; list the files first."
THINKING_VLLM = replace(VLLM, reasoning_parser=True)
THINKING_SGLANG = replace(SGLANG, reasoning_parser=True)
USER = {"role": "user", "content": "fix it"}


def post(server: ScriptedModelServer, messages: list[dict[str, Any]], **extra: Any) -> Any:
    request = {"model": server.config.model, "messages": messages, "tools": [BASH]} | extra
    return httpx.post(f"{server.base_url}/chat/completions", json=request, timeout=10)


def message_for(config: ServerConfig, turn: Reply, **extra: Any) -> tuple[dict[str, Any], str]:
    with ScriptedModelServer([turn], config=config) as server:
        response = post(server, [USER], **extra)
    assert response.status_code == 200, response.text
    choice = response.json()["choices"][0]
    return choice["message"], choice["finish_reason"]


def test_vllm_returns_reasoning_in_reasoning_and_keeps_the_template_newlines() -> None:
    message, finish = message_for(THINKING_VLLM, Reply(CALL, reasoning=PLAN))
    assert "reasoning_content" not in message
    assert message["reasoning"].strip() == PLAN
    assert finish == "tool_calls" and message["tool_calls"]
    assert message["content"] == "\n\n"  # what follows </think> before the call


def test_qwen36_template_thinks_from_the_prompt() -> None:
    config = replace(THINKING_VLLM, think_in_prompt=True)
    message, _ = message_for(config, Reply("Done.", reasoning=PLAN))
    assert (message["reasoning"], message["content"]) == (f"{PLAN}\n", "\n\nDone.")


def test_sglang_returns_reasoning_content_and_strips() -> None:
    message, finish = message_for(THINKING_SGLANG, Reply(CALL, reasoning=PLAN))
    assert "reasoning" not in message
    assert message["reasoning_content"] == f"{PLAN}\n"
    assert (message["content"], finish) == (None, "tool_calls")


def test_older_vllm_field_name() -> None:
    config = replace(THINKING_VLLM, reasoning_field="reasoning_content")
    message, _ = message_for(config, Reply("Done.", reasoning=PLAN))
    assert "reasoning" not in message and message["reasoning_content"].strip() == PLAN


def test_without_the_reasoning_parser_thinking_is_inline() -> None:
    message, finish = message_for(VLLM, Reply(CALL, reasoning=PLAN))
    assert message["content"] == f"<think>\n{PLAN}\n</think>\n\n"
    assert message["reasoning"] is None and finish == "tool_calls"


def test_reasoning_parser_on_a_reply_without_think_end_takes_it_all() -> None:
    message, _ = message_for(THINKING_VLLM, Reply("Just an answer."))
    assert (message["reasoning"], message["content"]) == ("Just an answer.", None)
    off = {"chat_template_kwargs": {"enable_thinking": False}}
    message, _ = message_for(THINKING_VLLM, Reply("Just an answer.", reasoning=PLAN), **off)
    assert (message["reasoning"], message["content"]) == (None, "Just an answer.")


def test_cut_inside_the_thinking_leaves_no_content() -> None:
    message, finish = message_for(THINKING_VLLM, Reply(CALL, reasoning=PLAN), max_tokens=4)
    assert (finish, message["content"], message["tool_calls"]) == ("length", None, [])
    assert PLAN.startswith(message["reasoning"].strip())


def history(first: dict[str, Any], field: str) -> list[dict[str, Any]]:
    assistant = {"role": "assistant", "content": first["content"]}
    assistant |= {"tool_calls": first["tool_calls"], field: PLAN}
    result = {"role": "tool", "tool_call_id": first["tool_calls"][0]["id"], "content": "a.py"}
    return [USER, assistant, result]


def test_vllm_refuses_reasoning_sent_back_in_reasoning_content() -> None:
    script = [Reply(CALL, reasoning=PLAN), Reply("Done.", expect_reasoning_back=True)]
    with ScriptedModelServer([*script, script[1]], config=THINKING_VLLM) as server:
        first = post(server, [USER]).json()["choices"][0]["message"]
        wrong = post(server, history(first, "reasoning_content"))
        right = post(server, history(first, "reasoning"))
    assert wrong.status_code == 500
    assert "did not come back in 'reasoning'" in wrong.text
    assert "came back in 'reasoning_content', which this server drops" in server.failures[0]
    assert right.status_code == 200
    assert server.reasoning_back == [[], ["reasoning_content"], ["reasoning"]]
    prompts = [server.prompt_tokens(request) for request in server.requests[1:]]
    assert prompts[0] < prompts[1]  # only the read field reaches the prompt


def test_sglang_reads_reasoning_content_only() -> None:
    script = [Reply(CALL, reasoning=PLAN), Reply("Done.", expect_reasoning_back=True)]
    with ScriptedModelServer([*script, script[1]], config=THINKING_SGLANG) as server:
        first = post(server, [USER]).json()["choices"][0]["message"]
        first["tool_calls"] = [call | {"id": "c1"} for call in first["tool_calls"]]
        first["content"] = first["content"] or ""
        wrong = post(server, history(first, "reasoning"))
        right = post(server, history(first, "reasoning_content"))
    assert (wrong.status_code, right.status_code) == (500, 200)
    assert wrong.json()["object"] == "error"


def test_inline_reasoning_sent_back_in_content_is_read() -> None:
    script = [Reply(CALL, reasoning=PLAN), Reply("Done.", expect_reasoning_back=True)]
    with ScriptedModelServer(script, config=VLLM) as server:
        first = post(server, [USER]).json()["choices"][0]["message"]
        assistant = {"role": "assistant", "content": first["content"]}
        assistant["tool_calls"] = first["tool_calls"]
        result = {"role": "tool", "tool_call_id": "x", "content": "a.py"}
        answer = post(server, [USER, assistant, result])
    assert answer.status_code == 200, answer.text
    assert server.reasoning_back[-1] == ["inline"]
