"""One generation: the scripted text cut at the output limit, then parsed as the server parses it.

Truncation: the model needs `count_tokens(text) + 1` tokens (the `<|im_end|>` EOS counts as
generated, as in vLLM's `len(output.token_ids)`); past `limit` the text is cut at a token
boundary, `completion_tokens == limit` and the finish reason is "length".

Finish reason with a tool parser (vLLM `chat_completion_full_generator`, vllm-project/vllm
vllm/entrypoints/openai/chat_completion/serving.py at 5e918640d7b6): "tool_calls" whenever the
parser found a call, even in a cut reply; its regex accepts an unterminated `<tool_call>`, so a
call cut inside `file_text` looks whole. SGLang (`_process_tool_calls`, sgl-project/sglang
python/sglang/srt/entrypoints/openai/serving_chat.py at 0c078e6f4268) turns "stop" into
"tool_calls" as soon as the text holds `<tool_call>`, before parsing, and leaves "length" alone.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from typing import Any

from tests.model_server import sglang_qwen3coder
from tests.model_server.config import (
    ANYOF_DOUBLE_ENCODED,
    CALLS_IN_CONTENT,
    MALFORMED_PARAMETER,
    SCHEMALESS_VALUES,
    ServerConfig,
)
from tests.model_server.reasoning import (
    generated_text,
    split_sglang,
    split_vllm,
    thinking_enabled,
)
from tests.model_server.script import Reply
from tests.model_server.tokens import tokenize
from tests.model_server.vllm_qwen3coder import Convert, extract_tool_calls, schema_converter

QWEN_EOS_TOKEN_ID = 151645
"""`<|im_end|>`: SGLang reports it as `matched_stop` when generation ends on it."""
PARAMETER_OPEN = re.compile(r"<parameter=[^>\n]*>")


@dataclass
class Generation:
    """What the server sends back for one scripted turn."""

    output: str
    """The generated text, cut at the limit."""
    completion_tokens: int
    finish_reason: str
    content: str | None
    reasoning: str | None
    tool_calls: list[dict[str, Any]] | None = field(default_factory=list)
    matched_stop: int | None = None
    reasoning_tokens: int = 0


def break_last_parameter(text: str) -> str:
    """The MALFORMED_PARAMETER garbling: drop the `>` of the last `<parameter=NAME>`."""
    matches = list(PARAMETER_OPEN.finditer(text))
    if not matches:
        return text
    end = matches[-1].end()
    return text[: end - 1] + text[end:]


def cut(text: str, limit: int, config: ServerConfig) -> tuple[str, int, bool]:
    """(text within the limit, completion tokens, truncated?)."""
    pieces = tokenize(text, config.tokenizer)
    if len(pieces) + 1 <= limit:
        return text, len(pieces) + 1, False
    return "".join(pieces[:limit]), limit, True


def converter(config: ServerConfig, quirks: frozenset[str]) -> Convert:
    if SCHEMALESS_VALUES in quirks:
        return sglang_qwen3coder.safe_val
    if config.dialect == "sglang":
        return sglang_qwen3coder.convert_param_value
    return schema_converter(anyof_as_object=ANYOF_DOUBLE_ENCODED not in quirks)


def parses_tools(request: dict[str, Any], config: ServerConfig, quirks: frozenset[str]) -> bool:
    if not (config.tool_parser and request.get("tools")) or CALLS_IN_CONTENT in quirks:
        return False
    return request.get("tool_choice", "auto") != "none"


def generate(turn: Reply, request: dict[str, Any], config: ServerConfig, limit: int) -> Generation:
    quirks = config.quirks | turn.quirks
    text = break_last_parameter(turn.text) if MALFORMED_PARAMETER in quirks else turn.text
    thinking = thinking_enabled(request)
    output, completion_tokens, truncated = cut(
        generated_text(text, turn.reasoning, config, thinking), limit, config
    )
    finish = "length" if truncated else "stop"
    reasoning: str | None = None
    content: str | None = output
    if config.reasoning_parser:
        split = split_vllm if config.dialect == "vllm" else split_sglang
        reasoning, content = split(output, thinking)
        if request.get("include_reasoning") is False:
            reasoning = None
    reasoning_tokens = len(tokenize(reasoning, config.tokenizer)) if reasoning else 0
    generation = Generation(
        output, completion_tokens, finish, content, reasoning, reasoning_tokens=reasoning_tokens
    )
    if config.dialect == "sglang":
        return parse_sglang(generation, request, config, quirks)
    return parse_vllm(generation, request, config, quirks)


def parse_vllm(
    generation: Generation, request: dict[str, Any], config: ServerConfig, quirks: frozenset[str]
) -> Generation:
    if not parses_tools(request, config, quirks) or generation.content is None:
        return generation
    extracted = extract_tool_calls(
        generation.content, request.get("tools"), convert=converter(config, quirks)
    )
    if not extracted.tools_called:
        generation.content = extracted.content or generation.content
        return generation
    generation.content = extracted.content
    calls = [call | {"id": f"chatcmpl-tool-{uuid.uuid4().hex}"} for call in extracted.tool_calls]
    # maybe_filter_parallel_tool_calls (vLLM >= 0.12): only the first call survives.
    generation.tool_calls = calls[:1] if request.get("parallel_tool_calls") is False else calls
    generation.finish_reason = "tool_calls"
    return generation


def parse_sglang(
    generation: Generation, request: dict[str, Any], config: ServerConfig, quirks: frozenset[str]
) -> Generation:
    generation.tool_calls = None
    if generation.finish_reason == "stop":
        generation.matched_stop = QWEN_EOS_TOKEN_ID
    text = generation.content or ""
    if not parses_tools(request, config, quirks) or "<tool_call>" not in text:
        return generation
    if generation.finish_reason == "stop":
        generation.finish_reason, generation.matched_stop = "tool_calls", None
    tools = request.get("tools")
    normal, calls = sglang_qwen3coder.detect_and_parse(text, tools, converter(config, quirks))
    generation.content = normal or None
    generation.tool_calls = [
        {
            "id": f"call_{uuid.uuid4().hex[:24]}",
            "index": index,
            "type": "function",
            "function": {"name": name, "arguments": arguments},
        }
        for index, (name, arguments) in enumerate(calls)
    ]
    return generation
