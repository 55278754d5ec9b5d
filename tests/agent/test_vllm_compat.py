"""The scripted server answers exactly as vLLM's qwen3_coder parser does, quirks included."""

from __future__ import annotations

import json
from typing import Any

from tests.model_server import ScriptedModelServer
from tests.model_server.script import Reply
from tests.model_server.vllm_qwen3coder import extract_tool_calls

BASH = {
    "type": "function",
    "function": {
        "name": "bash",
        "parameters": {
            "type": "object",
            "properties": {"command": {"type": "string"}, "timeout": {"type": "integer"}},
        },
    },
}


def completion(text: str, request: dict[str, Any], mode: str = "native") -> dict[str, Any]:
    server = ScriptedModelServer([], mode=mode)  # type: ignore[arg-type]
    return server.completion(Reply(text), request)


def test_response_has_vllms_field_set() -> None:
    text = "<tool_call>\n<function=bash>\n<parameter=command>\nls\n</parameter>\n</function>"
    body = completion(text, {"model": "m", "messages": [], "tools": [BASH]})
    assert body["id"].startswith("chatcmpl-") and body["object"] == "chat.completion"
    assert set(body) >= {"created", "model", "choices", "usage"}
    choice = body["choices"][0]
    assert (choice["index"], choice["logprobs"], choice["finish_reason"]) == (0, None, "tool_calls")
    assert "stop_reason" in choice
    message = choice["message"]
    assert message["role"] == "assistant" and message["content"] is None
    assert message["reasoning_content"] is None
    assert json.loads(message["tool_calls"][0]["function"]["arguments"]) == {"command": "ls"}
    usage = body["usage"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert usage["prompt_tokens_details"] == {"cached_tokens": 0}


def test_no_tools_in_request_means_no_parsing() -> None:
    text = "<function=bash><parameter=command>ls</parameter></function>"
    message = completion(text, {"messages": []})["choices"][0]["message"]
    assert message["content"] == text and message["tool_calls"] == []


def test_any_exception_gives_raw_text_and_no_calls() -> None:
    # A function tag without ">" makes vLLM's str.index raise; it then returns the raw text.
    text = "thinking <function=bash"
    extracted = extract_tool_calls(text, [BASH])
    assert (extracted.tools_called, extracted.content) == (False, text)


def test_null_becomes_none_even_for_strings() -> None:
    text = "<function=bash><parameter=command>null</parameter><parameter=timeout>x</parameter>"
    [call] = extract_tool_calls(text, [BASH]).tool_calls
    assert json.loads(call["function"]["arguments"]) == {"command": None, "timeout": "x"}


def test_unknown_parameters_stay_strings() -> None:
    text = "<function=bash><parameter=depth>3</parameter></function>"
    [call] = extract_tool_calls(text, [BASH]).tool_calls
    assert json.loads(call["function"]["arguments"]) == {"depth": "3"}


def test_raw_mode_never_parses() -> None:
    text = "<function=bash><parameter=command>ls</parameter></function>"
    choice = completion(text, {"messages": [], "tools": [BASH]}, mode="raw")["choices"][0]
    assert (choice["message"]["content"], choice["finish_reason"]) == (text, "stop")
