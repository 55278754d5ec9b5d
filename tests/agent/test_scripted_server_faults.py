"""Fault turns of the scripted server, over HTTP: error answers with `Retry-After`, 200s that
hold no chat completion, and outages in which the server goes away and comes back."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from tests.model_server import VLLM, BadBody, Fail, Outage, Reply, ScriptedModelServer

REQUEST = {"model": VLLM.model, "messages": [{"role": "user", "content": "fix it " * 100}]}
"""Long enough for whole KV blocks: sent twice, the second finds most of it cached."""


def post(server: ScriptedModelServer) -> httpx.Response:
    return httpx.post(f"{server.base_url}/chat/completions", json=REQUEST, timeout=10)


def test_a_503_carries_retry_after_and_the_dialects_error_body() -> None:
    with ScriptedModelServer([Fail(503, "Service Unavailable", retry_after=7)], config=VLLM) as s:
        response = post(s)
    assert (response.status_code, response.headers["retry-after"]) == (503, "7")
    assert response.json()["error"]["message"] == "Service Unavailable"


def test_an_empty_200_has_no_body_at_all() -> None:
    with ScriptedModelServer([BadBody("empty"), "next"], config=VLLM) as server:
        response = post(server)
        assert (response.status_code, response.content) == (200, b"")
        assert post(server).json()["choices"][0]["message"]["content"] == "next"


def test_invalid_json_is_a_completion_cut_in_half_with_a_matching_length() -> None:
    with ScriptedModelServer([BadBody("invalid_json")], config=VLLM) as server:
        response = post(server)
    assert response.status_code == 200
    assert response.text.startswith('{"id": "chatcmpl-')
    assert int(response.headers["content-length"]) == len(response.content)
    with pytest.raises(ValueError):
        response.json()


def test_a_cut_off_body_closes_the_connection_before_its_promised_length() -> None:
    with ScriptedModelServer([BadBody("cut_off"), "next"], config=VLLM) as server:
        with pytest.raises(httpx.RemoteProtocolError, match="without sending complete"):
            post(server)
        assert post(server).status_code == 200  # the server itself is fine


def test_an_outage_resets_the_request_refuses_connections_then_comes_back() -> None:
    script = ["before", "warm", Outage(back_after=1.0), "after"]
    with ScriptedModelServer(script, config=VLLM) as server:
        post(server)
        warm = post(server).json()
        with pytest.raises(httpx.RemoteProtocolError):
            post(server)  # the request that met the outage gets no answer at all
        with pytest.raises(httpx.ConnectError):
            post(server)  # nothing listens: refused, and the server never sees it
        gone = time.monotonic()
        after = wait_for_answer(server)
        assert time.monotonic() - gone > 0.5
    assert after.json()["choices"][0]["message"]["content"] == "after"
    assert (server.outages, server.turns_used, len(server.requests)) == (1, 4, 4)
    # A restarted server starts cold: the same prompt finds nothing cached any more.
    assert warm["usage"]["prompt_tokens_details"]["cached_tokens"] > 0
    assert after.json()["usage"]["prompt_tokens_details"] is None
    assert server.metrics.prompt_tokens == after.json()["usage"]["prompt_tokens"]


def test_an_outage_without_return_stays_down_and_stop_still_returns() -> None:
    server = ScriptedModelServer([Outage()], config=VLLM).start()
    with pytest.raises(httpx.RemoteProtocolError):
        post(server)
    time.sleep(0.5)
    with pytest.raises(httpx.ConnectError):
        post(server)
    started = time.monotonic()
    server.stop()
    assert time.monotonic() - started < 5


def test_stop_then_start_serves_on_the_same_port_from_the_same_turn() -> None:
    server = ScriptedModelServer(["one", "two"], config=VLLM).start()
    try:
        assert content(post(server)) == "one"
        port = server.port
        server.stop()
        with pytest.raises(httpx.ConnectError):
            post(server)
        server.start()
        assert (server.port, content(post(server))) == (port, "two")
    finally:
        server.stop()


def test_stop_cancels_a_hanging_request_instead_of_waiting_for_it() -> None:
    server = ScriptedModelServer([Reply("late", delay=60)], config=VLLM).start()
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(f"{server.base_url}/chat/completions", json=REQUEST, timeout=0.3)
    started = time.monotonic()
    server.stop()
    assert time.monotonic() - started < 5


def wait_for_answer(server: ScriptedModelServer, timeout: float = 10.0) -> httpx.Response:
    deadline = time.monotonic() + timeout
    while True:
        try:
            return post(server)
        except httpx.ConnectError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def content(response: httpx.Response) -> Any:
    return response.json()["choices"][0]["message"]["content"]
