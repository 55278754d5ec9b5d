"""Model profiles, and how replies of real servers are read: reasoning in either field or inline,
the window refusal, the garbling of arguments by servers' parsers."""

from __future__ import annotations

from typing import Any

import pytest

from bot.settings import MODEL_PROFILES
from workers.agent.model import MalformedReply, ModelReply, context_refusal, reply_of
from workers.agent.profiles import PROFILES, UnknownProfile, profile_for
from workers.agent.toolcall import undo_server_encoding


def test_the_settings_know_every_profile() -> None:
    assert set(MODEL_PROFILES) == {profile.name for profile in PROFILES}


@pytest.mark.parametrize(
    ("model", "profile"),
    [
        ("Qwen/Qwen3-Coder-480B-A35B-Instruct-FP8", "qwen3-coder"),
        ("Qwen/Qwen3-Coder-30B-A3B-Instruct", "qwen3-coder"),
        ("Qwen/Qwen3-Coder-Next-FP8", "qwen3-coder-next"),
        ("qwen3-coder-next", "qwen3-coder-next"),
        ("Qwen/Qwen3.6-35B-A3B-FP8", "qwen3.6"),
        ("Qwen/Qwen3.5-397B-A17B", "qwen3.6"),
        ("gpt-4.1", "generic"),
        ("my-finetune", "generic"),
    ],
)
def test_the_profile_follows_the_served_model(model: str, profile: str) -> None:
    assert profile_for(model).name == profile


def test_a_named_profile_wins_and_a_wrong_name_is_refused() -> None:
    assert profile_for("my-finetune", "qwen3-coder").name == "qwen3-coder"
    with pytest.raises(UnknownProfile, match="known: qwen3-coder-next"):
        profile_for("x", "qwen4")


def test_only_qwen_servers_get_the_extra_sampling_fields() -> None:
    assert "top_k" in profile_for("Qwen/Qwen3-Coder-Next").sampling.body(extras=True)
    generic = profile_for("gpt-4.1")
    assert generic.sampling.body(extras=generic.server_extras) == {"temperature": 0.7, "top_p": 0.8}
    reasoning = profile_for("Qwen/Qwen3.6-27B")
    assert reasoning.reasoning and dict(reasoning.template_kwargs) == {"preserve_thinking": True}


def completion(message: dict[str, Any], finish: str = "tool_calls") -> dict[str, Any]:
    return {"choices": [{"message": message, "finish_reason": finish}], "usage": {}}


@pytest.mark.parametrize("field", ["reasoning", "reasoning_content"])
def test_reasoning_comes_from_whichever_field_the_server_uses(field: str) -> None:
    call = {"id": "1", "type": "function", "function": {"name": "bash", "arguments": "{}"}}
    reply = reply_of(completion({"content": None, field: "Let me look.", "tool_calls": [call]}), 0)
    assert (reply.reasoning, reply.reasoning_field, reply.answer) == ("Let me look.", field, None)
    assert reply.tool_calls == [call]


def test_inline_reasoning_is_split_from_the_answer_but_kept_in_the_content() -> None:
    text = "<think>\nThe bug is in add.\n</think>\n\n<tool_call>…</tool_call>"
    reply = reply_of(completion({"content": text}, "stop"), 0)
    assert reply.reasoning == "The bug is in add."
    assert reply.reasoning_field == "inline"
    assert reply.answer == "<tool_call>…</tool_call>"
    assert reply.content == text


def test_a_reply_without_reasoning_is_unchanged() -> None:
    reply = reply_of(completion({"content": "hi"}, "stop"), 0)
    assert (reply.reasoning, reply.reasoning_field, reply.answer) == (None, None, "hi")
    assert isinstance(reply, ModelReply)


@pytest.mark.parametrize(
    ("message", "empty"),
    [
        ({"content": ""}, True),
        ({"content": None, "tool_calls": None}, True),  # SGLang's shape
        ({"content": "\n  \n"}, True),
        ({"content": None, "reasoning": "Thinking it over."}, False),  # thought, did not act
        ({"content": "", "tool_calls": [{"id": "1", "type": "function"}]}, False),
        ({"content": "no call"}, False),
    ],
)
def test_an_empty_reply_is_one_with_nothing_in_it(message: dict[str, Any], empty: bool) -> None:
    assert reply_of(completion(message, "stop"), 0).empty is empty


@pytest.mark.parametrize(
    "body", [{}, {"choices": []}, {"choices": [{}]}, {"choices": [{"message": "hi"}]}, [], "x"]
)
def test_a_body_without_a_message_is_a_malformed_reply(body: Any) -> None:
    with pytest.raises(MalformedReply, match="no choices"):
        reply_of(body, 0)


@pytest.mark.parametrize(
    ("text", "prompt", "window", "at_least"),
    [
        (  # vLLM >= 0.18: the count stops at the window less max_tokens, so "at least"
            "This model's maximum context length is 32768 tokens. However, you requested 8192 "
            "output tokens and your prompt contains at least 24577 input tokens, for a total of "
            "at least 32769 tokens. Please reduce the length of the input prompt or the number "
            "of requested output tokens. (parameter=input_tokens, value=24577)",
            24577,
            32768,
            True,
        ),
        (  # vLLM before 0.18
            "This model's maximum context length is 32768 tokens. However, you requested 33000 "
            "tokens (16616 in the messages, 16384 in the completion). Please reduce the length "
            "of the messages or completion.",
            16616,
            32768,
            False,
        ),
        (  # SGLang, the prompt alone
            "The input (40000 tokens) is longer than the model's context length (32768 tokens).",
            40000,
            32768,
            False,
        ),
        (  # SGLang, prompt plus output
            "Requested token count exceeds the model's maximum context length of 32768 tokens. "
            "You requested a total of 40000 tokens: 31000 tokens from the input messages and "
            "9000 tokens for the completion. Please reduce the number of tokens in the input "
            "messages or the completion to fit within the limit.",
            31000,
            32768,
            False,
        ),
        (  # vLLM, max_tokens alone too large
            "max_tokens=40000 cannot be greater than max_model_len=max_total_tokens=32768. "
            "Please request fewer output tokens.",
            None,
            32768,
            False,
        ),
    ],
)
def test_a_window_refusal_is_recognised_with_its_numbers(
    text: str, prompt: int | None, window: int, at_least: bool
) -> None:
    refused = context_refusal(400, '{"message": "' + text + '"}')
    assert refused is not None
    assert (refused.prompt_tokens, refused.window, refused.at_least) == (prompt, window, at_least)
    assert context_refusal(500, text) is None
    assert context_refusal(400, "Invalid tool_choice") is None


@pytest.mark.parametrize(
    ("value", "spec", "expected"),
    [
        ('["a", "b"]', {"anyOf": [{"type": "array"}, {"type": "null"}]}, ["a", "b"]),
        ('{"k": 1}', {"type": "object"}, {"k": 1}),
        ("[1, 2]", {"type": "array"}, [1, 2]),
        ("not json", {"type": "array"}, "not json"),
        ('"x"', {"type": "array"}, '"x"'),  # decodes, but not to an allowed type
        ("null", {"anyOf": [{"type": "array"}, {"type": "null"}]}, None),
        ("03106", {"type": "string"}, "03106"),
        (3106, {"type": "string"}, "3106"),
        (True, {"type": "string"}, "true"),
        ("7", {"type": "integer"}, 7),
        ("true", {"type": "boolean"}, True),
        ("[1]", {"anyOf": [{"type": "string"}, {"type": "array"}]}, "[1]"),
        ("[1]", None, "[1]"),
    ],
)
def test_values_garbled_by_a_servers_parser_are_read_as_the_schema_means(
    value: Any, spec: Any, expected: Any
) -> None:
    assert undo_server_encoding(value, spec) == expected
