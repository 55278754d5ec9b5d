"""ModelClient against the scripted vLLM-compatible server: replies, usage, retries, timeouts."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from tests.model_server import VLLM, BadBody, Fail, Outage, Reply, ScriptedModelServer
from workers.agent.model import ModelClient, ModelConfig, ModelError, retry_after

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
        with pytest.raises(ModelError, match="could not be reached") as raised:
            await client.complete(MESSAGES, tools)
    assert f"at {server.base_url} (MODEL_BASE_URL)" in str(raised.value)
    assert "gave up after 1 retries (2 attempts in" in str(raised.value)
    assert "the last attempt refused the connection (is it running?)" in str(raised.value)


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


async def test_giving_up_on_5xx_names_the_server_and_the_retries(
    scripted_server: StartServer, tools: list[Any]
) -> None:
    server = scripted_server([Fail(500, "EngineCore encountered an issue")] * 3, config=VLLM)
    async with client_for(server, max_retries=2) as client:
        with pytest.raises(ModelError) as raised:
            await client.complete(MESSAGES, tools)
    message = str(raised.value)
    assert message.startswith(f"the model server at {server.base_url} (MODEL_BASE_URL) failed")
    assert "gave up after 2 retries (3 attempts in 0 s); the last attempt answered 500" in message
    assert "EngineCore encountered an issue" in message


async def test_retry_after_is_waited_for_up_to_backoff_max(
    scripted_server: StartServer, tools: list[Any]
) -> None:
    server = scripted_server([Fail(503, retry_after=1), CALL, Fail(503, retry_after=30), CALL])
    retries: list[str] = []
    config = ModelConfig(base_url=server.base_url, backoff_initial=0.01, backoff_max=2.0)
    async with ModelClient(config, on_retry=retries.append) as client:
        started = time.monotonic()
        await client.complete(MESSAGES, tools)
        honoured = time.monotonic() - started
        started = time.monotonic()
        await client.complete(MESSAGES, tools)
        capped = time.monotonic() - started
    assert 1.0 <= honoured < 10 and 2.0 <= capped < 10  # not the 30 s asked for
    assert retries[0].endswith("answered 503; retrying in 1 s (attempt 2 of 6)")
    assert retries[1].endswith("answered 503; retrying in 2 s (attempt 2 of 6)")
    assert len(server.requests) == 4


def test_retry_after_reads_seconds_and_http_dates() -> None:
    def error(value: str) -> httpx.HTTPStatusError:
        request = httpx.Request("POST", "http://model/v1/chat/completions")
        response = httpx.Response(503, headers={"retry-after": value}, request=request)
        return httpx.HTTPStatusError("503", request=request, response=response)

    now = datetime(2026, 12, 1, 12, 0, 0, tzinfo=UTC)
    assert retry_after(error("7"), now) == 7.0
    assert retry_after(error("Tue, 01 Dec 2026 12:00:30 GMT"), now) == 30.0
    assert retry_after(error("Tue, 01 Dec 2026 11:00:00 GMT"), now) == 0.0  # already past
    assert retry_after(error("soon"), now) is None
    assert retry_after(error("nan"), now) is None
    assert retry_after(httpx.ConnectError("refused"), now) is None


async def test_bodies_that_hold_no_completion_are_retried(
    scripted_server: StartServer, tools: list[Any]
) -> None:
    faults = [BadBody("empty"), BadBody("invalid_json"), BadBody("cut_off")]
    server = scripted_server([*faults, CALL], config=VLLM)
    retries: list[str] = []
    config = ModelConfig(base_url=server.base_url, backoff_initial=0.01, backoff_max=0.05)
    async with ModelClient(config, on_retry=retries.append) as client:
        reply = await client.complete(MESSAGES, tools)
    assert reply.tool_calls and len(server.requests) == 4
    assert "sent no chat completion: a 200 with an empty body, not JSON" in retries[0]
    assert 'sent no chat completion: a 200 with \'{"id": "chatcmpl-' in retries[1]
    assert "dropped the connection (RemoteProtocolError: peer closed connection" in retries[2]


async def test_a_completion_without_choices_is_retried_then_reported(
    scripted_server: StartServer, tools: list[Any]
) -> None:
    server = scripted_server([BadBody("invalid_json")] * 2, config=VLLM)
    async with client_for(server, max_retries=1) as client:
        with pytest.raises(ModelError, match="failed: gave up after 1 retries") as raised:
            await client.complete(MESSAGES, tools)
    assert "the last attempt sent no chat completion: a 200 with" in str(raised.value)


async def test_an_outage_in_the_middle_of_a_request_is_ridden_out(
    scripted_server: StartServer, tools: list[Any]
) -> None:
    server = scripted_server([Outage(back_after=1.0), CALL], config=VLLM)
    retries: list[str] = []
    config = ModelConfig(base_url=server.base_url, backoff_initial=0.2, backoff_max=0.5)
    async with ModelClient(config, on_retry=retries.append) as client:
        reply = await client.complete(MESSAGES, tools)
    assert reply.tool_calls and server.outages == 1 and len(server.requests) == 2
    assert "dropped the connection (RemoteProtocolError" in retries[0]
    assert all("refused the connection" in line for line in retries[1:]) and retries[1:]


async def test_a_server_gone_for_good_is_reported_unreachable_with_its_retries(
    scripted_server: StartServer, tools: list[Any]
) -> None:
    server = scripted_server([Outage()], config=VLLM)
    async with client_for(server, max_retries=3) as client:
        with pytest.raises(ModelError) as raised:
            await client.complete(MESSAGES, tools)
    message = str(raised.value)
    assert f"the model server at {server.base_url} (MODEL_BASE_URL) could not be reached" in message
    assert "gave up after 3 retries (4 attempts in" in message
    assert message.endswith("the last attempt refused the connection (is it running?)")
    assert len(server.requests) == 1  # refused connections never reach it


async def test_a_timeout_names_the_setting(scripted_server: StartServer, tools: list[Any]) -> None:
    server = scripted_server([Reply(CALL, delay=5)] * 2)
    async with client_for(server, timeout=0.3, max_retries=1) as client:
        with pytest.raises(ModelError, match=r"did not answer within 0\.3 s \(MODEL_TIMEOUT\)"):
            await client.complete(MESSAGES, tools)
    assert len(server.requests) == 2


async def test_an_empty_reply_comes_back_as_it_is(
    scripted_server: StartServer, tools: list[Any]
) -> None:
    server = scripted_server([""], config=VLLM)
    async with client_for(server) as client:
        reply = await client.complete(MESSAGES, tools)
    assert reply.empty and (reply.content, reply.tool_calls) == ("", [])
    assert len(server.requests) == 1  # the model's answer, not a server fault: not retried
