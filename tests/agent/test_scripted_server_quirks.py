"""Garbling modes that reproduce reported parser failures, and SGLang's own parser, over HTTP."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import httpx
import pytest

from tests.model_server import (
    ANYOF_DOUBLE_ENCODED,
    CALLS_IN_CONTENT,
    MALFORMED_PARAMETER,
    SCHEMALESS_VALUES,
    SGLANG,
    VLLM,
    Reply,
    ScriptedModelServer,
    ServerConfig,
)

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {
            "type": "object",
            "properties": {
                "location": {
                    "anyOf": [
                        {"type": "object", "properties": {"city": {"type": "string"}}},
                        {"type": "object", "properties": {"lat": {"type": "number"}}},
                    ]
                },
                "zip_code": {"type": "string"},
                "days": {"type": "integer"},
            },
        },
    },
}
BASH = {
    "type": "function",
    "function": {
        "name": "bash",
        "parameters": {"type": "object", "properties": {"command": {"type": "string"}}},
    },
}
TOOLS = [WEATHER, BASH]
WEATHER_CALL = (
    "<tool_call>\n<function=get_weather>\n<parameter=location>\n"
    '{"city": "Paris"}\n</parameter>\n<parameter=zip_code>\n75001\n</parameter>\n'
    "<parameter=days>\n3\n</parameter>\n</function>\n</tool_call>"
)
TWO_CALLS = (
    "Two things.\n<tool_call>\n<function=bash>\n<parameter=command>\nls\n</parameter>\n"
    "</function>\n</tool_call>\n<tool_call>\n<function=bash>\n<parameter=command>\npwd\n"
    "</parameter>\n</function>\n</tool_call>"
)


def choice_for(config: ServerConfig, turn: str | Reply) -> dict[str, Any]:
    request = {"model": config.model, "messages": [{"role": "user", "content": "go"}]}
    request |= {"tools": TOOLS, "tool_choice": "auto"}
    with ScriptedModelServer([turn], config=config) as server:
        response = httpx.post(f"{server.base_url}/chat/completions", json=request, timeout=10)
    assert response.status_code == 200, response.text
    return dict(response.json()["choices"][0])


def arguments(choice: dict[str, Any]) -> list[dict[str, Any]]:
    return [json.loads(call["function"]["arguments"]) for call in choice["message"]["tool_calls"]]


def test_calls_left_in_content_with_the_parser_on() -> None:
    choice = choice_for(VLLM, Reply(TWO_CALLS, quirk=CALLS_IN_CONTENT))
    assert (choice["finish_reason"], choice["message"]["tool_calls"]) == ("stop", [])
    assert choice["message"]["content"] == TWO_CALLS


def test_calls_in_content_server_wide_on_sglang() -> None:
    choice = choice_for(replace(SGLANG, quirks=frozenset({CALLS_IN_CONTENT})), TWO_CALLS)
    assert (choice["finish_reason"], choice["message"]["tool_calls"]) == ("stop", None)
    assert choice["message"]["content"] == TWO_CALLS


def test_one_malformed_parameter_drops_every_vllm_call() -> None:
    choice = choice_for(VLLM, Reply(TWO_CALLS, quirk=MALFORMED_PARAMETER))
    assert "<parameter=command\npwd" in choice["message"]["content"]
    assert (choice["finish_reason"], choice["message"]["tool_calls"]) == ("stop", [])


def test_malformed_parameter_written_by_hand_has_the_same_effect() -> None:
    broken = TWO_CALLS.replace("<parameter=command>\nls", "<parameter=command\nls")
    choice = choice_for(VLLM, broken)
    assert (choice["message"]["content"], choice["message"]["tool_calls"]) == (broken, [])


def test_sglang_skips_only_the_malformed_parameter() -> None:
    choice = choice_for(SGLANG, Reply(TWO_CALLS, quirk=MALFORMED_PARAMETER))
    assert choice["finish_reason"] == "tool_calls"
    assert arguments(choice) == [{"command": "ls"}, {}]
    assert choice["message"]["content"] == "Two things.\n"


def test_anyof_is_an_object_in_current_vllm() -> None:
    [args] = arguments(choice_for(VLLM, WEATHER_CALL))
    assert args == {"location": {"city": "Paris"}, "zip_code": "75001", "days": 3}


@pytest.mark.parametrize(
    "config, turn",
    [
        (VLLM, Reply(WEATHER_CALL, quirk=ANYOF_DOUBLE_ENCODED)),
        (SGLANG, Reply(WEATHER_CALL)),
    ],
    ids=["vllm-before-36032", "sglang"],
)
def test_anyof_double_encoded(config: ServerConfig, turn: Reply) -> None:
    [args] = arguments(choice_for(config, turn))
    assert args["location"] == '{"city": "Paris"}'


def test_sglang_schemaless_values_ignore_the_schema() -> None:
    text = WEATHER_CALL.replace("75001", "12345")
    [args] = arguments(choice_for(SGLANG, Reply(text, quirk=SCHEMALESS_VALUES)))
    assert args == {"location": {"city": "Paris"}, "zip_code": 12345, "days": 3}
    [flag] = arguments(
        choice_for(SGLANG, Reply(text.replace("12345", "true"), quirk=SCHEMALESS_VALUES))
    )
    assert flag["zip_code"] is True
    [leading_zero] = arguments(
        choice_for(SGLANG, Reply(text.replace("12345", "03106"), quirk=SCHEMALESS_VALUES))
    )
    assert leading_zero["zip_code"] == "03106"  # json and literal_eval both reject leading zeros
    [typed] = arguments(choice_for(SGLANG, text))
    assert typed["zip_code"] == "12345"


def test_sglang_response_shape_for_calls() -> None:
    choice = choice_for(SGLANG, TWO_CALLS)
    assert set(choice) == {"index", "message", "logprobs", "finish_reason", "matched_stop"}
    assert (choice["finish_reason"], choice["matched_stop"]) == ("tool_calls", None)
    calls = choice["message"]["tool_calls"]
    assert [call["index"] for call in calls] == [0, 1]
    assert all(call["id"].startswith("call_") and len(call["id"]) == 29 for call in calls)
    assert set(choice["message"]) == {"role", "content", "reasoning_content", "tool_calls"}


def test_sglang_tool_calls_finish_even_when_nothing_parses() -> None:
    bare = "<tool_call>\nnot a call\n</tool_call>"
    choice = choice_for(SGLANG, bare)
    assert (choice["finish_reason"], choice["message"]["tool_calls"]) == ("tool_calls", [])
    assert choice["message"]["content"] == bare


def test_sglang_needs_the_tool_call_tag_vllm_does_not() -> None:
    bare = "<function=bash>\n<parameter=command>\nls\n</parameter>\n</function>"
    assert arguments(choice_for(VLLM, bare)) == [{"command": "ls"}]
    sglang = choice_for(SGLANG, bare)
    assert (sglang["finish_reason"], sglang["matched_stop"], sglang["message"]["tool_calls"]) == (
        "stop",
        151645,
        None,
    )


def test_vllm_keeps_one_call_without_parallel_tool_calls() -> None:
    request: dict[str, Any] = {"model": VLLM.model, "messages": [{"role": "user", "content": "go"}]}
    request |= {"tools": TOOLS, "parallel_tool_calls": False}
    with ScriptedModelServer([TWO_CALLS], config=VLLM) as server:
        response = httpx.post(f"{server.base_url}/chat/completions", json=request, timeout=10)
    [call] = response.json()["choices"][0]["message"]["tool_calls"]
    assert json.loads(call["function"]["arguments"]) == {"command": "ls"}


def test_unknown_quirk_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown quirks"):
        Reply("x", quirk="garble_everything")
    with pytest.raises(ValueError, match="unknown quirks"):
        ServerConfig(quirks=frozenset({"garble_everything"}))
