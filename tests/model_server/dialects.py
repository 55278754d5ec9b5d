"""Response bodies as vLLM and SGLang write them: completions, usage, errors, model cards, info.

vLLM: vllm-project/vllm vllm/entrypoints/openai/chat_completion/protocol.py at d5dba2d7b0ab
(`ChatMessage`, `ChatCompletionResponse`) and engine/protocol.py at 040a2cc2a629 (`ErrorInfo`,
`ModelCard`, `UsageInfo`); `prompt_tokens_details` only when cached tokens are above zero
(serving.py at 5e918640d7b6). SGLang: sgl-project/sglang
python/sglang/srt/entrypoints/openai/protocol.py (`ChatMessage` with `reasoning_content`,
`matched_stop`, flat `ErrorResponse`, `ModelCard` owned by "sglang"), usage_processor.py at
9e738dbafab3 (`cached_tokens` only when above zero) and http_server.py at 0025436eab05
(`/get_model_info`, `/get_server_info`); `reasoning_tokens` in usage and `metadata` in the
body are from captured SGLang 0.5.x responses.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from tests.model_server.config import ServerConfig
from tests.model_server.generation import Generation

VLLM_ERROR_TYPES = {
    400: "BadRequestError",
    404: "NotFoundError",
    500: "InternalServerError",
    501: "NotImplementedError",
    503: "ServiceUnavailableError",
}


def error_body(
    config: ServerConfig,
    status: int,
    message: str,
    error_type: str | None = None,
    param: str | None = None,
) -> dict[str, Any]:
    kind = error_type or VLLM_ERROR_TYPES.get(status, "BadRequestError")
    if config.dialect == "sglang":
        return {"object": "error", "message": message, "type": kind, "param": None, "code": status}
    return {"error": {"message": message, "type": kind, "param": param, "code": status}}


def usage(
    config: ServerConfig, prompt_tokens: int, cached: int, generation: Generation
) -> dict[str, Any]:
    details = None
    if config.prompt_tokens_details and (cached > 0 or config.report_zero_cached):
        details = {"cached_tokens": cached}
    body: dict[str, Any] = {
        "prompt_tokens": prompt_tokens,
        "total_tokens": prompt_tokens + generation.completion_tokens,
        "completion_tokens": generation.completion_tokens,
        "prompt_tokens_details": details,
    }
    if config.dialect == "sglang":
        body["reasoning_tokens"] = generation.reasoning_tokens
    return body


def reasoning_fields(config: ServerConfig, reasoning: str | None) -> dict[str, Any]:
    if config.reasoning_field == "both":
        return {"reasoning": reasoning, "reasoning_content": reasoning}
    return {config.reasoning_field: reasoning}


def vllm_completion(
    config: ServerConfig, generation: Generation, usage_body: dict[str, Any]
) -> dict[str, Any]:
    message: dict[str, Any] = {
        "role": "assistant",
        "content": generation.content,
        "refusal": None,
        "annotations": None,
        "audio": None,
        "function_call": None,
        "tool_calls": generation.tool_calls or [],
    }
    message |= reasoning_fields(config, generation.reasoning)
    choice = {"index": 0, "message": message, "logprobs": None}
    choice |= {"finish_reason": generation.finish_reason, "stop_reason": None, "token_ids": None}
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": config.model,
        "choices": [choice],
        "service_tier": None,
        "system_fingerprint": None,
        "usage": usage_body,
        "prompt_logprobs": None,
        "prompt_token_ids": None,
        "kv_transfer_params": None,
    }


def sglang_completion(
    config: ServerConfig,
    generation: Generation,
    usage_body: dict[str, Any],
    request: dict[str, Any],
) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": generation.content}
    message |= reasoning_fields(config, generation.reasoning or None)
    message["tool_calls"] = generation.tool_calls
    choice = {"index": 0, "message": message, "logprobs": None}
    choice |= {"finish_reason": generation.finish_reason, "matched_stop": generation.matched_stop}
    return {
        "id": uuid.uuid4().hex,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": request.get("model") or "default",
        "choices": [choice],
        "usage": usage_body,
        "metadata": {"weight_version": "default"},
    }


def completion(
    config: ServerConfig,
    generation: Generation,
    usage_body: dict[str, Any],
    request: dict[str, Any],
) -> dict[str, Any]:
    if config.dialect == "sglang":
        return sglang_completion(config, generation, usage_body, request)
    return vllm_completion(config, generation, usage_body)


def model_list(config: ServerConfig, created: int) -> dict[str, Any]:
    card: dict[str, Any] = {"id": config.model, "object": "model", "created": created}
    if config.dialect == "sglang":
        card |= {"owned_by": "sglang", "root": config.model}
        if config.report_window:
            card["max_model_len"] = config.max_model_len
        return {"object": "list", "data": [card]}
    permission = {
        "id": f"modelperm-{uuid.uuid4().hex}",
        "object": "model_permission",
        "created": created,
        "allow_create_engine": False,
        "allow_sampling": True,
        "allow_logprobs": True,
        "allow_search_indices": False,
        "allow_view": True,
        "allow_fine_tuning": False,
        "organization": "*",
        "group": None,
        "is_blocking": False,
    }
    card |= {"owned_by": "vllm", "root": config.model, "parent": None}
    if config.report_window:
        card["max_model_len"] = config.max_model_len
    card["permission"] = [permission]
    return {"object": "list", "data": [card]}


def sglang_model_info(config: ServerConfig) -> dict[str, Any]:
    return {
        "model_path": config.model,
        "tokenizer_path": config.model,
        "is_generation": True,
        "preferred_sampling_params": None,
        "weight_version": "default",
    }


def sglang_server_info(config: ServerConfig) -> dict[str, Any]:
    """A subset of `dataclasses.asdict(server_args)`, the scheduler info, internal states."""
    return {
        "model_path": config.model,
        "tokenizer_path": config.model,
        "served_model_name": config.model,
        "context_length": config.max_model_len if config.report_window else None,
        "tool_call_parser": "qwen3_coder" if config.tool_parser else None,
        "reasoning_parser": "qwen3" if config.reasoning_parser else None,
        "enable_cache_report": config.prompt_tokens_details,
        "disable_radix_cache": not config.prefix_caching,
        "page_size": config.kv_block_size,
        "enable_metrics": True,
        "max_total_num_tokens": config.max_total_num_tokens,
        "internal_states": [{"last_gen_throughput": 0.0}],
        "version": config.version,
    }
