"""Each dialect's routes, model cards, metrics and request-validation errors, over HTTP."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import httpx

from tests.model_server import (
    COMPAT,
    SGLANG,
    VLLM,
    Fail,
    ScriptedModelServer,
    count_tokens,
    prompt_text,
)

USER = [{"role": "user", "content": "hi"}]
BASH = {"type": "function", "function": {"name": "bash", "parameters": {"type": "object"}}}


def get(server: ScriptedModelServer, path: str) -> httpx.Response:
    return httpx.get(f"{server.root_url}{path}", timeout=10)


def post(server: ScriptedModelServer, request: dict[str, Any]) -> httpx.Response:
    return httpx.post(f"{server.base_url}/chat/completions", json=request, timeout=10)


def samples(text: str) -> dict[str, float]:
    """`name{labels}` -> value for every sample line of a Prometheus exposition."""
    pairs = (line.rsplit(" ", 1) for line in text.splitlines() if not line.startswith("#"))
    return {key: float(value) for key, value in pairs if key}


def test_vllm_models_health_version_and_no_sglang_routes() -> None:
    config = replace(VLLM, max_model_len=131072)
    with ScriptedModelServer([], config=config) as server:
        [card] = get(server, "/v1/models").json()["data"]
        health, version = get(server, "/health"), get(server, "/version")
        missing = get(server, "/get_model_info")
    assert (card["id"], card["owned_by"], card["max_model_len"]) == (config.model, "vllm", 131072)
    assert card["permission"][0]["object"] == "model_permission"
    assert (health.status_code, health.content) == (200, b"")
    assert version.json() == {"version": VLLM.version}
    assert missing.status_code == 404


def test_sglang_models_and_info_routes() -> None:
    config = replace(SGLANG, max_model_len=65536)
    with ScriptedModelServer([], config=config) as server:
        [card] = get(server, "/v1/models").json()["data"]
        infos = [get(server, path).json() for path in ("/get_model_info", "/model_info")]
        servers = [get(server, path).json() for path in ("/get_server_info", "/server_info")]
        health = get(server, "/health_generate")
    assert (card["owned_by"], card["max_model_len"]) == ("sglang", 65536)
    assert "permission" not in card
    assert infos[0] == infos[1] and infos[0]["model_path"] == config.model
    assert servers[0]["context_length"] == 65536 and servers[0] == servers[1]
    assert servers[0]["max_total_num_tokens"] == config.max_total_num_tokens
    assert health.status_code == 200


def test_vllm_metrics_follow_runtime_settings() -> None:
    with ScriptedModelServer(["ok"], config=VLLM) as server:
        server.metrics.waiting, server.metrics.running = 5, 2
        server.metrics.kv_cache_usage, server.metrics.preemptions = 0.93, 7
        post(server, {"model": VLLM.model, "messages": USER})
        response = get(server, "/metrics")
    labels = f'{{engine="0",model_name="{VLLM.model}"}}'
    values = samples(response.text)
    assert response.headers["content-type"].startswith("text/plain")
    assert values[f"vllm:num_requests_waiting{labels}"] == 5
    assert values[f"vllm:num_requests_running{labels}"] == 2
    assert values[f"vllm:kv_cache_usage_perc{labels}"] == 0.93
    assert values[f"vllm:num_preemptions_total{labels}"] == 7
    assert values[f"vllm:prompt_tokens_total{labels}"] == server.metrics.prompt_tokens > 0
    assert "# TYPE vllm:num_requests_waiting gauge" in response.text


def test_sglang_metrics_names() -> None:
    with ScriptedModelServer([], config=SGLANG) as server:
        server.metrics.waiting, server.metrics.running, server.metrics.kv_cache_usage = 3, 1, 0.5
        values = samples(get(server, "/metrics").text)
    labels = f'{{model_name="{SGLANG.model}"}}'
    assert values[f"sglang:num_queue_reqs{labels}"] == 3
    assert values[f"sglang:num_running_reqs{labels}"] == 1
    assert values[f"sglang:token_usage{labels}"] == 0.5


def test_vllm_unknown_model_is_404() -> None:
    with ScriptedModelServer(["never"], config=VLLM) as server:
        response = post(server, {"model": "gpt-4", "messages": USER})
    assert response.status_code == 404
    assert response.json()["error"] == {
        "message": "The model `gpt-4` does not exist.",
        "type": "NotFoundError",
        "param": "model",
        "code": 404,
    }
    assert server.remaining == 1 and server.refused[0].kind == "model"


def test_vllm_without_tool_parser_refuses_auto_tool_choice() -> None:
    with ScriptedModelServer(["text", "text"], mode="raw", config=VLLM) as server:
        implied = post(server, {"model": VLLM.model, "messages": USER, "tools": [BASH]})
        none = post(
            server, {"model": VLLM.model, "messages": USER, "tools": [BASH], "tool_choice": "none"}
        )
    assert implied.status_code == 400
    assert implied.json()["error"]["message"] == (
        '"auto" tool choice requires --enable-auto-tool-choice and --tool-call-parser to be set'
    )
    assert none.status_code == 200
    assert server.prompt_tokens(server.requests[1]) > server.prompt_tokens({"messages": USER})


def test_compat_keeps_the_old_leniency() -> None:
    with ScriptedModelServer(["text"], mode="raw") as server:
        response = post(server, {"model": "anything", "messages": USER, "tools": [BASH]})
    assert server.config.reasoning_field == COMPAT.reasoning_field == "both"
    message = response.json()["choices"][0]["message"]
    assert (message["reasoning"], message["reasoning_content"]) == (None, None)
    assert response.json()["usage"]["prompt_tokens_details"] == {"cached_tokens": 0}
    prompt = prompt_text(server.requests[0], COMPAT)
    assert response.json()["usage"]["prompt_tokens"] == (len(prompt) + 3) // 4
    assert count_tokens(prompt) != (len(prompt) + 3) // 4  # VLLM and SGLANG count like Qwen


def test_history_arguments_must_be_json() -> None:
    call = {"id": "c", "type": "function", "function": {"name": "bash", "arguments": '{"a": '}}
    messages = [*USER, {"role": "assistant", "content": "", "tool_calls": [call]}]
    with ScriptedModelServer(["x"], config=VLLM) as vllm:
        refused = post(vllm, {"model": VLLM.model, "messages": messages})
    with ScriptedModelServer(["x"], config=SGLANG) as sglang:
        crashed = post(sglang, {"model": "m", "messages": messages})
    assert refused.status_code == 400
    assert refused.json()["error"]["message"] == "Expecting value: line 1 column 7 (char 6)"
    assert crashed.status_code == 500
    assert crashed.json()["type"] == "InternalServerError"
    assert crashed.json()["message"].startswith("Internal server error: ")


def test_scripted_failures_use_the_dialect_error_shape() -> None:
    with ScriptedModelServer([Fail(503, "busy")], config=SGLANG) as server:
        response = post(server, {"model": "m", "messages": USER})
    assert response.json() == {
        "object": "error",
        "message": "busy",
        "type": "ServiceUnavailableError",
        "param": None,
        "code": 503,
    }
