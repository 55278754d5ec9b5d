"""The scripted server enforces the context window exactly as vLLM and SGLang do, over HTTP."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import httpx

from tests.model_server import SGLANG, VLLM, Fail, ScriptedModelServer, ServerConfig

WINDOW = 4096
SMALL_VLLM = replace(VLLM, max_model_len=WINDOW)
SMALL_SGLANG = replace(SGLANG, max_model_len=WINDOW)
MESSAGES = [{"role": "system", "content": "You fix bugs."}, {"role": "user", "content": "go"}]


def body(config: ServerConfig, **extra: Any) -> dict[str, Any]:
    return {"model": config.model, "messages": MESSAGES} | extra


def post(server: ScriptedModelServer, request: dict[str, Any]) -> httpx.Response:
    return httpx.post(f"{server.base_url}/chat/completions", json=request, timeout=10)


def test_vllm_accepts_exactly_the_window_and_refuses_one_token_more() -> None:
    with ScriptedModelServer(["ok", "ok"], config=SMALL_VLLM) as server:
        prompt = server.prompt_tokens(body(SMALL_VLLM))
        at_limit = post(server, body(SMALL_VLLM, max_tokens=WINDOW - prompt))
        over = post(server, body(SMALL_VLLM, max_tokens=WINDOW - prompt + 1))
    assert at_limit.status_code == 200
    assert at_limit.json()["usage"]["prompt_tokens"] == prompt
    assert over.status_code == 400
    # The count is exact here, but vLLM says "at least" whenever it is the truncation length.
    count, budget = prompt, WINDOW - prompt + 1
    assert over.json() == {
        "error": {
            "message": (
                f"This model's maximum context length is {WINDOW} tokens. However, you "
                f"requested {budget} output tokens and your prompt contains at least {count} "
                f"input tokens, for a total of at least {count + budget} tokens. Please reduce "
                "the length of the input prompt or the number of requested output tokens. "
                f"(parameter=input_tokens, value={count})"
            ),
            "type": "BadRequestError",
            "param": "input_tokens",
            "code": 400,
        }
    }


def test_vllm_prompt_alone_over_the_window_is_reported_as_at_least_window_plus_one() -> None:
    long = [{"role": "user", "content": "word " * WINDOW}]
    with ScriptedModelServer(["never"], config=SMALL_VLLM) as server:
        response = post(server, {"model": SMALL_VLLM.model, "messages": long})
        assert server.prompt_tokens({"messages": long}) > WINDOW + 1
    message = response.json()["error"]["message"]
    assert response.status_code == 400
    assert "you requested 0 output tokens and your prompt contains at least 4097 input" in message
    assert message.endswith("(parameter=input_tokens, value=4097)")
    assert (server.remaining, len(server.refused)) == (1, 1)


def test_vllm_max_tokens_above_the_window() -> None:
    with ScriptedModelServer([], config=SMALL_VLLM) as server:
        response = post(server, body(SMALL_VLLM, max_completion_tokens=WINDOW + 1))
    assert response.json()["error"]["message"] == (
        f"max_completion_tokens={WINDOW + 1} cannot be greater than "
        f"max_model_len=max_total_tokens={WINDOW}. Please request fewer output tokens. "
        f"(parameter=max_completion_tokens, value={WINDOW + 1})"
    )


def test_refused_requests_are_recorded_and_consume_no_turn() -> None:
    with ScriptedModelServer([Fail(503), "answer"], config=SMALL_VLLM) as server:
        refused = post(server, body(SMALL_VLLM, max_tokens=WINDOW))
        failed = post(server, body(SMALL_VLLM, max_tokens=16))
        answered = post(server, body(SMALL_VLLM, max_tokens=16))
    assert [r.status_code for r in (refused, failed, answered)] == [400, 503, 200]
    assert answered.json()["choices"][0]["message"]["content"] == "answer"
    assert len(server.requests) == 3 and server.remaining == 0
    [record] = server.refused
    assert (record.status, record.kind, record.request["max_tokens"]) == (
        400,
        "context_length",
        WINDOW,
    )


def test_sglang_refuses_a_prompt_of_exactly_the_window() -> None:
    prompt = ScriptedModelServer([], config=SMALL_SGLANG).prompt_tokens(body(SMALL_SGLANG))
    window = replace(SMALL_SGLANG, max_model_len=prompt)
    with ScriptedModelServer(["ok"], config=window) as server:
        response = post(server, body(window))
    assert response.status_code == 400
    assert response.json() == {
        "object": "error",
        "message": (
            f"The input ({prompt} tokens) is longer than the model's context length "
            f"({prompt} tokens)."
        ),
        "type": "BadRequestError",
        "param": None,
        "code": 400,
    }


def test_sglang_total_boundary_and_message() -> None:
    with ScriptedModelServer(["ok"], config=SMALL_SGLANG) as server:
        prompt = server.prompt_tokens(body(SMALL_SGLANG))
        over = post(server, body(SMALL_SGLANG, max_tokens=WINDOW - prompt + 1))
        at_limit = post(server, body(SMALL_SGLANG, max_tokens=WINDOW - prompt))
    assert at_limit.status_code == 200 and server.remaining == 0
    assert over.json()["message"] == (
        f"Requested token count exceeds the model's maximum context length of {WINDOW} tokens. "
        f"You requested a total of {WINDOW + 1} tokens: {prompt} tokens from the input messages "
        f"and {WINDOW - prompt + 1} tokens for the completion. Please reduce the number of "
        "tokens in the input messages or the completion to fit within the limit."
    )


def test_prompt_counts_tools_arguments_and_reasoning_sent_back() -> None:
    call: dict[str, Any] = {"id": "c1", "type": "function"}
    call["function"] = {"name": "bash", "arguments": "{}"}
    bigger = call | {"function": {"name": "bash", "arguments": '{"command": "ls -la /src"}'}}
    assistant: dict[str, Any] = {"role": "assistant", "content": "", "tool_calls": [call]}
    base = [*MESSAGES, assistant]
    server = ScriptedModelServer([], config=VLLM)
    plain = server.prompt_tokens({"messages": base})
    with_args = server.prompt_tokens(
        {"messages": [*MESSAGES, assistant | {"tool_calls": [bigger]}]}
    )
    with_tools = server.prompt_tokens({"messages": base, "tools": [{"function": {"name": "x"}}]})
    thought = assistant | {"reasoning": "think hard"}
    with_reasoning = server.prompt_tokens({"messages": [*MESSAGES, thought]})
    dropped = server.prompt_tokens(
        {"messages": [*MESSAGES, assistant | {"reasoning_content": "x"}]}
    )
    assert plain < with_args and plain < with_tools and plain < with_reasoning
    assert dropped == plain  # vLLM drops `reasoning_content` on input
