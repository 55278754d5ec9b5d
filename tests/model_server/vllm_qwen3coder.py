"""A faithful port of vLLM's `Qwen3CoderToolParser.extract_tool_calls` (non-streaming).

Source: vllm-project/vllm,
vllm/entrypoints/openai/tool_parsers/qwen3coder_tool_parser.py (Apache-2.0), as of 2025-2026
before PR #36032. Quirks are reproduced, not fixed: the scripted server must fail where vLLM
fails. `anyof_as_object=True` adds PR #36032 (merged 2026-03-05): a parameter whose schema has
`anyOf` and no `type` is parsed as an object instead of kept as a string. `convert` replaces the
value conversion (the scripted server uses it for SGLang's old schema-blind `_safe_val`).
"""

from __future__ import annotations

import ast
import json
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

TOOL_CALL_START = "<tool_call>"
FUNCTION_PREFIX = "<function="

TOOL_CALL_REGEX = re.compile(r"<tool_call>(.*?)</tool_call>|<tool_call>(.*?)$", re.DOTALL)
FUNCTION_REGEX = re.compile(r"<function=(.*?)</function>|<function=(.*)$", re.DOTALL)
PARAMETER_REGEX = re.compile(
    r"<parameter=(.*?)(?:</parameter>|(?=<parameter=)|(?=</function>)|$)", re.DOTALL
)


@dataclass
class ExtractedToolCalls:
    """What vLLM's parser returns: whether tools were called, the calls and the leftover content."""

    tools_called: bool
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    content: str | None = None


def arguments_config(function_name: str, tools: list[dict[str, Any]] | None) -> dict[str, Any]:
    if tools is None:
        return {}
    for tool in tools:
        function = tool.get("function")
        if tool.get("type") != "function" or not isinstance(function, dict):
            continue
        if function.get("name") == function_name:
            params = function.get("parameters")
            if isinstance(params, dict) and "properties" in params:
                return dict(params["properties"])
            return dict(params) if isinstance(params, dict) else {}
    return {}


Convert = Callable[[str, str, dict[str, Any]], Any]


def convert_param_value(
    value: str, name: str, config: dict[str, Any], *, anyof_as_object: bool = False
) -> Any:
    if value.lower() == "null":
        return None
    if name not in config:
        return value
    spec = config[name]
    if isinstance(spec, dict) and "type" in spec:
        kind = str(spec["type"]).strip().lower()
    elif anyof_as_object and isinstance(spec, dict) and "anyOf" in spec:
        kind = "object"
    else:
        kind = "string"
    if kind in ("string", "str", "text", "varchar", "char", "enum"):
        return value
    if kind.startswith(("int", "uint", "long", "short", "unsigned")):
        try:
            return int(value)
        except ValueError:
            return value
    if kind.startswith(("num", "float")):
        try:
            number = float(value)
            return number if number - int(number) != 0 else int(number)
        except (ValueError, OverflowError):
            return value
    if kind in ("boolean", "bool", "binary"):
        return value.lower() == "true"
    if kind in ("object", "array", "arr") or kind.startswith(("dict", "list")):
        try:
            return json.loads(value)
        except ValueError:
            pass
    try:
        return ast.literal_eval(value)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return value


def schema_converter(*, anyof_as_object: bool) -> Convert:
    def convert(value: str, name: str, config: dict[str, Any]) -> Any:
        return convert_param_value(value, name, config, anyof_as_object=anyof_as_object)

    return convert


def parse_function_call(
    text: str, tools: list[dict[str, Any]] | None, convert: Convert = convert_param_value
) -> dict[str, Any]:
    # str.index raises ValueError on a missing ">", which vLLM turns into "no tool calls".
    end = text.index(">")
    name = text[:end]
    config = arguments_config(name, tools)
    arguments: dict[str, Any] = {}
    for match in PARAMETER_REGEX.findall(text[end + 1 :]):
        split = match.index(">")
        value = str(match[split + 1 :])
        if value.startswith("\n"):
            value = value[1:]
        if value.endswith("\n"):
            value = value[:-1]
        arguments[match[:split]] = convert(value, match[:split], config)
    return {
        "id": f"chatcmpl-tool-{uuid.uuid4().hex}",
        "type": "function",
        "function": {"name": name, "arguments": json.dumps(arguments, ensure_ascii=False)},
    }


def function_call_texts(output: str) -> list[str]:
    raw_tool_calls = [a or b for a, b in TOOL_CALL_REGEX.findall(output)]
    if not raw_tool_calls:
        raw_tool_calls = [output]
    found: list[str] = []
    for tool_call in raw_tool_calls:
        found.extend(a or b for a, b in FUNCTION_REGEX.findall(tool_call))
    return found


def extract_tool_calls(
    output: str,
    tools: list[dict[str, Any]] | None,
    *,
    anyof_as_object: bool = False,
    convert: Convert | None = None,
) -> ExtractedToolCalls:
    """Mirror of `Qwen3CoderToolParser.extract_tool_calls`."""
    converter = convert or schema_converter(anyof_as_object=anyof_as_object)
    if FUNCTION_PREFIX not in output:
        return ExtractedToolCalls(tools_called=False, content=output)
    try:
        texts = function_call_texts(output)
        if not texts:
            return ExtractedToolCalls(tools_called=False, content=output)
        calls = [parse_function_call(text, tools, converter) for text in texts]
        start = output.find(TOOL_CALL_START)
        start = start if start >= 0 else output.find(FUNCTION_PREFIX)
        content = output[:start]
        return ExtractedToolCalls(bool(calls), calls, content or None)
    except Exception:
        return ExtractedToolCalls(tools_called=False, content=output)
