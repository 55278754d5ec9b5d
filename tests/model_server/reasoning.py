"""Reasoning: how each server's qwen3 reasoning parser splits output, and what comes back.

vLLM: `Qwen3ReasoningParser.extract_reasoning`, vllm-project/vllm
vllm/reasoning/qwen3_reasoning_parser.py at 00a4c6a1d828. SGLang: `Qwen3Detector` /
`BaseReasoningFormatDetector.detect_and_parse`, sgl-project/sglang
python/sglang/srt/parser/reasoning_parser.py (the version with `<tool_call>` as an implicit end).
"""

from __future__ import annotations

import re
from typing import Any

from tests.model_server.config import ServerConfig

THINK_START, THINK_END, TOOL_CALL_START = "<think>", "</think>", "<tool_call>"
FUNCTION_OPEN = re.compile(r"<function[\s=]")


def thinking_enabled(request: dict[str, Any]) -> bool:
    """Qwen3 templates think unless `chat_template_kwargs.enable_thinking` is false."""
    kwargs = request.get("chat_template_kwargs") or {}
    return kwargs.get("enable_thinking", True) is not False


def split_vllm(output: str, thinking: bool) -> tuple[str | None, str | None]:
    """(reasoning, content). Without `</think>` everything is reasoning (truncated thinking),
    unless `<tool_call><function=` ends it implicitly or thinking is disabled."""
    before, found, after = output.partition(THINK_START)
    output = after if found else before
    if THINK_END in output:
        reasoning, _, content = output.partition(THINK_END)
        return reasoning, content or None
    if not thinking:
        return None, output
    start = output.find(TOOL_CALL_START)
    if start != -1 and FUNCTION_OPEN.match(output[start + len(TOOL_CALL_START) :].lstrip()):
        return output[:start] or None, output[start:] or None
    return output, None


def split_sglang(output: str, thinking: bool) -> tuple[str | None, str | None]:
    """(reasoning, content): the text is stripped and the content after `</think>` too."""
    if not thinking and THINK_START not in output:
        return None, output
    processed = output.replace(THINK_START, "").strip()
    if THINK_END not in processed:
        if TOOL_CALL_START in processed:
            start = processed.find(TOOL_CALL_START)
            return processed[:start].strip() or None, processed[start:] or None
        return processed or None, None
    reasoning, _, content = processed.partition(THINK_END)
    return reasoning or None, content.strip() or None


def generated_text(text: str, reasoning: str | None, config: ServerConfig, thinking: bool) -> str:
    """What the model emits: its thinking (Qwen3 template layout) and then `text`."""
    if not reasoning or not thinking:
        return text
    start = "" if config.think_in_prompt else f"{THINK_START}\n"
    return f"{start}{reasoning}\n{THINK_END}\n\n{text}"


def where_sent_back(message: dict[str, Any]) -> str | None:
    """Where an assistant message carries reasoning: a field name, "both", "inline" or None."""
    fields = [name for name in ("reasoning", "reasoning_content") if message.get(name)]
    if len(fields) == 2:
        return "both"
    if fields:
        return fields[0]
    content = message.get("content")
    return "inline" if isinstance(content, str) and THINK_END in content else None


def carried_in(reasoning: str, message: dict[str, Any], fields: tuple[str, ...]) -> bool:
    wanted = reasoning.strip()
    for name in fields:
        value = message.get(name)
        if isinstance(value, str) and wanted and wanted in value:
            return True
    return False


def missing_reasoning(
    emitted: list[tuple[int, str]], request: dict[str, Any], config: ServerConfig
) -> str | None:
    """Why earlier reasoning did not come back where this server reads it, or None."""
    assistants = [m for m in request.get("messages") or [] if m.get("role") == "assistant"]
    readable = (*config.reasoning_input_fields, "content")
    for turn, reasoning in emitted:
        if any(carried_in(reasoning, message, readable) for message in assistants):
            continue
        elsewhere = [
            name
            for name in ("reasoning", "reasoning_content")
            if any(carried_in(reasoning, message, (name,)) for message in assistants)
        ]
        found = f"it came back in {elsewhere[0]!r}, which " if elsewhere else "it did not come "
        found += "this server drops" if elsewhere else "back at all"
        reads = " or ".join(repr(name) for name in config.reasoning_input_fields)
        return (
            f"the reasoning of turn {turn} did not come back in {reads} (the field "
            f"{config.dialect} reads) nor inline in 'content': {found}"
        )
    return None
