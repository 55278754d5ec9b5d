"""ModelClient against the scripted vLLM-compatible server: replies, usage, retries, timeouts."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.model_server import Fail, Reply, ScriptedModelServer
from workers.agent.model import ModelClient, ModelConfig, ModelError

CALL = "Let me look.\n<tool_call>\n<function=bash>\n<parameter=command>\nls -la\n</parameter>\n<parameter=timeout>\n30\n</parameter>\n</function>\n</tool_call>"  # noqa: E501
MESSAGES = [{"role": "system", "content": "sys"}, {"role": "user", "content": "fix the bug"}]

StartServer = Callable[..., ScriptedModelServer]


def client_for(server: ScriptedModelServer, **overrides: Any) -> ModelClient:
    settings: dict[str, Any] = {"backoff_initial": 0.01, "backoff_max": 0.05, "timeout": 5.0}
    return ModelClient(ModelConfig(base_url=server.base_url, **(settings | overrides)))


async def test_native_reply_is_parsed_like_vllm(
    scripted_server: StartServer, tools: list[Any]
) -> None:
    server = scripted_server([CALL])
    async with client_for(server) as client:
        reply = await client.complete(MESSAGES, tools)
    assert reply.finish_reason == "tool_calls"
    assert reply.content == "Let me look.\n"
    [call] = reply.tool_calls
    assert call["id"].startswith("chatcmpl-tool-") and call["type"] == "function"
    assert call["function"]["name"] == "bash"
    assert json.loads(call["function"]["arguments"]) == {"command": "ls -la", "timeout": 30}
    body = server.requests[0]
    assert (body["top_k"], body["repetition_penalty"], body["tool_choice"]) == (20, 1.05, "auto")
    assert (body["temperature"], body["top_p"]) == (0.7, 0.8)


async def test_raw_mode_returns_the_text(scripted_server: StartServer, tools: list[Any]) -> None:
    server = scripted_server([CALL], mode="raw")
    async with client_for(server) as client:
        reply = await client.complete(MESSAGES, tools)
    assert (reply.content, reply.tool_calls, reply.finish_reason) == (CALL, [], "stop")


async def test_usage_accumulates_and_counts_the_cached_prefix(
    scripted_server: StartServer, tools: list[Any]
) -> None:
    server = scripted_server([CALL, "done"])
    async with client_for(server) as client:
        first = await client.complete(MESSAGES, tools)
        longer = [
            *MESSAGES,
            {"role": "assistant", "content": "ok"},
            {"role": "user", "content": "go"},
        ]
        second = await client.complete(longer, tools)
    assert first.usage.cached_tokens == 0
    assert 0 < second.usage.cached_tokens < second.usage.prompt_tokens
    assert client.usage.calls == 2
    assert client.usage.prompt_tokens == first.usage.prompt_tokens + second.usage.prompt_tokens
    assert client.usage.completion_tokens > 0 and client.usage.latency > 0


async def test_retries_on_500_and_429(scripted_server: StartServer, tools: list[Any]) -> None:
    server = scripted_server([Fail(500), Fail(429, "rate limited"), CALL])
    async with client_for(server) as client:
        reply = await client.complete(MESSAGES, tools)
    assert reply.tool_calls and len(server.requests) == 3
    assert client.usage.calls == 1


async def test_timeout_then_success(scripted_server: StartServer, tools: list[Any]) -> None:
    server = scripted_server([Reply(CALL, delay=1.5), CALL])
    async with client_for(server, timeout=0.5) as client:
        reply = await client.complete(MESSAGES, tools)
    assert reply.tool_calls and len(server.requests) == 2


async def test_gives_up_after_max_retries(scripted_server: StartServer, tools: list[Any]) -> None:
    server = scripted_server([Fail(503)] * 3)
    async with client_for(server, max_retries=2) as client:
        with pytest.raises(ModelError, match="503"):
            await client.complete(MESSAGES, tools)
    assert len(server.requests) == 3


async def test_client_errors_are_not_retried(
    scripted_server: StartServer, tools: list[Any]
) -> None:
    server = scripted_server([Fail(400, "context length exceeded"), CALL])
    async with client_for(server) as client:
        with pytest.raises(ModelError, match="context length exceeded"):
            await client.complete(MESSAGES, tools)
    assert len(server.requests) == 1


async def test_unreachable_server_is_a_model_error(tools: list[Any]) -> None:
    server = ScriptedModelServer([])  # never started: nothing listens on its port
    async with client_for(server, max_retries=1) as client:
        with pytest.raises(ModelError, match="unreachable"):
            await client.complete(MESSAGES, tools)


async def test_exhausted_script_fails_loudly(scripted_server: StartServer) -> None:
    server = scripted_server([])
    async with httpx.AsyncClient(base_url=server.base_url + "/") as http:
        response = await http.post("chat/completions", json={"messages": MESSAGES})
        models = await http.get("models")
    assert response.status_code == 500 and "script exhausted" in response.text
    assert models.json()["data"][0]["object"] == "model"


async def test_expectation_on_the_last_message(scripted_server: StartServer) -> None:
    server = scripted_server([Reply("a", expect_in_last_message="[exit code 0]")])
    async with client_for(server, max_retries=0) as client:
        with pytest.raises(ModelError, match="expected"):
            await client.complete(MESSAGES, [])
    assert server.failures
