"""Token counting, prefix-cache accounting and truncation at the output limit, over HTTP."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import httpx

from tests.model_server import (
    SGLANG,
    VLLM,
    ScriptedModelServer,
    count_tokens,
    prompt_text,
    tokenize,
)

BASH = {
    "type": "function",
    "function": {
        "name": "bash",
        "parameters": {"type": "object", "properties": {"command": {"type": "string"}}},
    },
}
WRITE = {
    "type": "function",
    "function": {
        "name": "write_file",
        "parameters": {
            "type": "object",
            "properties": {"path": {"type": "string"}, "file_text": {"type": "string"}},
        },
    },
}
FILE_TEXT = "def add(a, b):\n" + "    return a + b  # the sum of both operands\n" * 20
WRITE_CALL = (
    "<tool_call>\n<function=write_file>\n<parameter=path>\ncalc.py\n</parameter>\n"
    f"<parameter=file_text>\n{FILE_TEXT}</parameter>\n</function>\n</tool_call>"
)
SYSTEM = {"role": "system", "content": "You are a careful engineer. " * 30}


def chat(server: ScriptedModelServer, messages: list[dict[str, Any]], **extra: Any) -> Any:
    request = {"model": server.config.model, "messages": messages} | extra
    response = httpx.post(f"{server.base_url}/chat/completions", json=request, timeout=10)
    assert response.status_code == 200, response.text
    return response.json()


def test_code_and_json_cost_more_tokens_per_character_than_prose() -> None:
    prose = "The agent reads the issue, plans a fix and runs the tests until they pass."
    code = json.dumps({"path": "src/a.py", "line": 12, "args": [1, 2, {"k": None}]})
    assert len(prose) / count_tokens(prose) > 2 * len(code) / count_tokens(code)
    assert count_tokens("12345") == 5  # Qwen splits numbers into single digits
    assert count_tokens("<|im_start|>user\n") == 3
    assert "".join(tokenize(FILE_TEXT)) == FILE_TEXT


def test_cached_tokens_are_the_common_prefix_in_whole_blocks() -> None:
    first = [SYSTEM, {"role": "user", "content": "fix the bug"}]
    second = [*first, {"role": "assistant", "content": "ok"}, {"role": "user", "content": "go"}]
    changed = [SYSTEM | {"content": "Other. " + SYSTEM["content"]}, *second[1:]]
    with ScriptedModelServer(["ok", "done", "again"], config=VLLM) as server:
        one, two, three = chat(server, first), chat(server, second), chat(server, changed)
    assert one["usage"]["prompt_tokens"] == count_tokens(prompt_text({"messages": first}, VLLM))
    assert one["usage"]["prompt_tokens_details"] is None  # a miss: vLLM sends null
    # The second prompt repeats the first, the generated "ok" and its <|im_end|>: cached in
    # whole blocks of 16.
    cached = two["usage"]["prompt_tokens_details"]["cached_tokens"]
    assert cached == (one["usage"]["prompt_tokens"] + 2) // 16 * 16
    assert three["usage"]["prompt_tokens_details"] is None  # the first tokens differ
    assert server.metrics.prefix_cache_hits == cached


def test_generated_tokens_are_cached_too_and_the_last_prompt_token_never_is() -> None:
    messages = [SYSTEM, {"role": "user", "content": "hello"}]
    config = replace(SGLANG, kv_block_size=1)
    with ScriptedModelServer(["hi", "hi"], config=config) as server:
        chat(server, messages)
        again = chat(server, messages)
    prompt = again["usage"]["prompt_tokens"]
    assert again["usage"]["prompt_tokens_details"] == {"cached_tokens": prompt - 1}


def test_no_details_without_the_flag_or_without_prefix_caching() -> None:
    messages = [SYSTEM, {"role": "user", "content": "hello"}]
    for config in (
        replace(VLLM, prompt_tokens_details=False),
        replace(VLLM, prefix_caching=False),
    ):
        with ScriptedModelServer(["a", "b"], config=config) as server:
            chat(server, messages)
            usage = chat(server, messages)["usage"]
        assert usage["prompt_tokens_details"] is None


def test_reply_cut_at_max_tokens_reports_length() -> None:
    text = " ".join(["word"] * 50)
    with ScriptedModelServer([text, text], config=VLLM) as server:
        cut = chat(server, [{"role": "user", "content": "talk"}], max_tokens=10)
        whole = chat(server, [{"role": "user", "content": "talk"}], max_tokens=51)
    assert cut["choices"][0]["finish_reason"] == "length"
    assert cut["usage"]["completion_tokens"] == 10
    assert cut["choices"][0]["message"]["content"] == "".join(tokenize(text)[:10])
    assert whole["choices"][0]["finish_reason"] == "stop"
    assert whole["usage"]["completion_tokens"] == 51  # 50 tokens and the EOS


def test_vllm_reports_tool_calls_for_a_call_cut_inside_file_text() -> None:
    limit = count_tokens(WRITE_CALL) // 2
    with ScriptedModelServer([WRITE_CALL], config=VLLM) as server:
        body = chat(server, [{"role": "user", "content": "write"}], tools=[WRITE], max_tokens=limit)
    choice = body["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert body["usage"]["completion_tokens"] == limit
    [call] = choice["message"]["tool_calls"]
    arguments = json.loads(call["function"]["arguments"])
    assert arguments["path"] == "calc.py"
    assert FILE_TEXT.startswith(arguments["file_text"]) and arguments["file_text"] != FILE_TEXT


def test_sglang_keeps_length_for_a_cut_call() -> None:
    limit = count_tokens(WRITE_CALL) // 2
    with ScriptedModelServer([WRITE_CALL], config=SGLANG) as server:
        body = chat(server, [{"role": "user", "content": "write"}], tools=[WRITE], max_tokens=limit)
    choice = body["choices"][0]
    assert (choice["finish_reason"], choice["matched_stop"]) == ("length", None)
    [call] = choice["message"]["tool_calls"]
    assert FILE_TEXT.startswith(json.loads(call["function"]["arguments"])["file_text"])


def test_without_max_tokens_the_output_may_fill_the_window() -> None:
    config = replace(VLLM, max_model_len=600)
    text = "token " * 1000
    with ScriptedModelServer([text], config=config) as server:
        body = chat(server, [{"role": "user", "content": "talk"}])
    usage = body["usage"]
    assert body["choices"][0]["finish_reason"] == "length"
    assert usage["prompt_tokens"] + usage["completion_tokens"] == 600
