"""A port of SGLang's `Qwen3CoderDetector.detect_and_parse` (non-streaming) and its old `_safe_val`.

Source: sgl-project/sglang, python/sglang/srt/function_call/qwen3_coder_detector.py at
048a57e8f7b0 (the detector rewritten in PR #16744, Jan 2026), Apache-2.0. Differences from
vLLM's parser that show through the API:

- a reply is only looked at when it holds `<tool_call>` (vLLM also parses a bare `<function=`);
- only complete `<tool_call>...</tool_call>` blocks count; if there is none, the whole text is
  parsed, so a reply cut inside its only call still yields that call;
- a `<function=` or `<parameter=` without `>` is skipped alone, the other calls survive;
- a parameter whose schema has no `type` (e.g. `anyOf`) is kept as a string, so objects arrive
  double-encoded.

`safe_val` is the value conversion of the detector before PR #16744: json.loads, then
ast.literal_eval, whatever the schema (sgl-project/sglang PRs #13411 and #15135 describe it).
"""

from __future__ import annotations

import ast
import html
import json
import re
from collections.abc import Callable
from typing import Any

from tests.model_server.vllm_qwen3coder import arguments_config

TOOL_CALL_START = "<tool_call>"
FUNCTION_PREFIX = "<function="
COMPLETE_TOOL_CALL_REGEX = re.compile(r"<tool_call>(.*?)</tool_call>", re.DOTALL)
FUNCTION_REGEX = re.compile(r"<function=(.*?)</function>|<function=(.*)$", re.DOTALL)
PARAMETER_REGEX = re.compile(
    r"<parameter=(.*?)(?:</parameter>|(?=<parameter=)|(?=</function>)|$)", re.DOTALL
)
STRING_TYPES = ("string", "str", "text", "varchar", "char", "enum")
INTEGER_PREFIXES = ("int", "uint", "long", "short", "unsigned")

Convert = Callable[[str, str, dict[str, Any]], Any]


def safe_val(raw: str, name: str = "", config: dict[str, Any] | None = None) -> Any:
    """SGLang's pre-#16744 `_safe_val`: schema-blind; `12345` becomes an int, `true` a bool."""
    raw = html.unescape(raw.strip())
    try:
        return json.loads(raw)
    except ValueError:
        try:
            return ast.literal_eval(raw)
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            return raw


def convert_param_value(value: str, name: str, config: dict[str, Any]) -> Any:
    """`Qwen3CoderDetector._convert_param_value`."""
    if value.lower() == "null":
        return None
    if name not in config:
        return value
    spec = config[name]
    typed = isinstance(spec, dict) and "type" in spec
    kind = str(spec["type"]).strip().lower() if typed else "string"
    if kind in STRING_TYPES:
        return value
    if kind.startswith(INTEGER_PREFIXES):
        try:
            return int(value)
        except ValueError:
            return value
    if kind.startswith(("num", "float")):
        try:
            whole = not ("." in value or "e" in value.lower())
            number = float(value)
            return int(number) if whole and number.is_integer() else number
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


def parse_calls(
    text: str, tools: list[dict[str, Any]] | None, convert: Convert
) -> list[tuple[str, str]]:
    raw_tool_calls = COMPLETE_TOOL_CALL_REGEX.findall(text)
    if not raw_tool_calls and FUNCTION_PREFIX in text:
        raw_tool_calls = [text]
    calls: list[tuple[str, str]] = []
    for block in raw_tool_calls:
        for complete, open_ended in FUNCTION_REGEX.findall(block):
            body = complete or open_ended
            if ">" not in body:
                continue
            name, parameters = body.split(">", 1)
            config = arguments_config(name, tools)
            arguments: dict[str, Any] = {}
            for match in PARAMETER_REGEX.findall(parameters):
                if ">" not in match:
                    continue
                key, value = match.split(">", 1)
                value = value[1:] if value.startswith("\n") else value
                value = value[:-1] if value.endswith("\n") else value
                arguments[key] = convert(value, key, config)
            calls.append((name, json.dumps(arguments, ensure_ascii=False)))
    return calls


def detect_and_parse(
    text: str, tools: list[dict[str, Any]] | None, convert: Convert = convert_param_value
) -> tuple[str, list[tuple[str, str]]]:
    """(normal text, [(name, arguments JSON)]) as `FunctionCallParser.parse_non_stream` returns:
    the full text and no calls when nothing parsed."""
    if TOOL_CALL_START not in text:
        return text, []
    try:
        calls = parse_calls(text, tools, convert)
    except Exception:
        return text, []
    if not calls:
        return text, []
    start = text.find(TOOL_CALL_START)
    return (text[:start] if start > 0 else ""), calls
