"""Tool calls: Qwen3-Coder's XML format parsed client-side, native calls normalised, both checked.

The XML parser follows vLLM's qwen3_coder parser (same tags, newline stripping and schema-driven
conversion) so a call means the same whichever side parsed it, but it reports a malformed call
as a FormatError the model can act on instead of silently dropping it.
"""

from __future__ import annotations

import ast
import json
import re
import uuid
from dataclasses import dataclass
from typing import Any

TOOL_CALL_START = "<tool_call>"
FUNCTION_PREFIX = "<function="
FUNCTION_END = "</function>"
TRUNCATED = (
    "Your last tool call ends without `</function>`: the reply was cut off, so it was not run. "
    "Make smaller steps: write big files in parts."
)
TOOL_CALL_REGEX = re.compile(r"<tool_call>(.*?)</tool_call>|<tool_call>(.*?)$", re.DOTALL)
FUNCTION_REGEX = re.compile(r"<function=(.*?)</function>|<function=(.*)$", re.DOTALL)
PARAMETER_REGEX = re.compile(
    r"<parameter=(.*?)(?:</parameter>|(?=<parameter=)|(?=</function>)|$)", re.DOTALL
)
NAME_REGEX = re.compile(r"[A-Za-z0-9_.\-]+")
CALL_EXAMPLE = (
    "<tool_call>\n<function=NAME>\n<parameter=ARG>\nvalue\n</parameter>\n</function>\n</tool_call>"
)
JSON_TYPES: dict[str, tuple[type, ...]] = {
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "array": (list,),
    "object": (dict,),
}


class FormatError(Exception):
    """The model's reply holds no usable tool call; the message tells the model how to fix it."""


@dataclass(frozen=True)
class ToolCall:
    """One call of one tool with decoded arguments."""

    id: str
    name: str
    arguments: dict[str, Any]


def new_call_id() -> str:
    return f"call_{uuid.uuid4().hex[:24]}"


def schema_properties(name: str, tools: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The parameter properties of tool `name`, or None when no such tool exists."""
    for tool in tools:
        function = tool.get("function") or {}
        if function.get("name") == name:
            return dict((function.get("parameters") or {}).get("properties") or {})
    return None


def required_parameters(name: str, tools: list[dict[str, Any]]) -> list[str]:
    for tool in tools:
        function = tool.get("function") or {}
        if function.get("name") == name:
            return list((function.get("parameters") or {}).get("required") or [])
    return []


def convert_value(value: str, spec: Any) -> Any:
    """Convert an XML parameter value by its JSON schema, as vLLM does; failures stay strings."""
    if value.lower() == "null":
        return None
    kind = str(spec.get("type", "string")).strip().lower() if isinstance(spec, dict) else "string"
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


def function_texts(text: str) -> list[str]:
    blocks = [a or b for a, b in TOOL_CALL_REGEX.findall(text)] or [text]
    return [a or b for block in blocks for a, b in FUNCTION_REGEX.findall(block)]


def strip_one_newline(value: str) -> str:
    value = value.removeprefix("\n")
    return value.removesuffix("\n")


def parse_function(text: str, tools: list[dict[str, Any]]) -> ToolCall:
    head, sep, body = text.partition(">")
    name = head.strip()
    if not sep or "\n" in name:
        name = name.split("\n")[0][:40]
        raise FormatError(f"`<function={name}` is missing the `>` that ends the tool name.")
    if not NAME_REGEX.fullmatch(name):
        raise FormatError(f"`<function={name[:40]}>` does not name a tool.")
    properties = schema_properties(name, tools) or {}
    arguments: dict[str, Any] = {}
    for match in PARAMETER_REGEX.findall(body):
        key, sep, value = match.partition(">")
        if not sep or not NAME_REGEX.fullmatch(key.strip()):
            raise FormatError(f"In `{name}`: `<parameter={key[:40]}` is not a well-formed tag.")
        key = key.strip()
        if key in arguments:
            raise FormatError(f"In `{name}`: parameter `{key}` is given twice.")
        arguments[key] = convert_value(strip_one_newline(value), properties.get(key))
    return ToolCall(new_call_id(), name, arguments)


def parse_xml_tool_calls(text: str, tools: list[dict[str, Any]]) -> tuple[str, list[ToolCall]]:
    """Split raw model text into the prose before the first call and the calls themselves."""
    if FUNCTION_PREFIX not in text:
        if TOOL_CALL_START in text:
            raise FormatError(f"`<tool_call>` holds no `<function=NAME>`. Use:\n{CALL_EXAMPLE}")
        return text, []
    start = text.find(TOOL_CALL_START)
    start = start if start >= 0 else text.find(FUNCTION_PREFIX)
    calls = [parse_function(function, tools) for function in function_texts(text)]
    if FUNCTION_END not in text[text.rfind(FUNCTION_PREFIX) :]:
        # Unlike vLLM's parser, which takes an unterminated call for a whole one: a reply cut
        # at the output limit would write a truncated file. A call always ends with </function>.
        raise FormatError(TRUNCATED)
    return text[:start], calls


def parse_native_tool_calls(
    tool_calls: list[dict[str, Any]], tools: list[dict[str, Any]]
) -> list[ToolCall]:
    """Decode OpenAI `tool_calls` (arguments as a JSON string) into ToolCalls."""
    calls = []
    for raw in tool_calls:
        function = raw.get("function") or {}
        name = str(function.get("name") or "")
        arguments = function.get("arguments") or "{}"
        try:
            decoded = json.loads(arguments) if isinstance(arguments, str) else arguments
        except ValueError as exc:
            raise FormatError(f"The arguments of `{name}` are not valid JSON: {exc}.") from exc
        if not isinstance(decoded, dict):
            raise FormatError(f"The arguments of `{name}` must be an object of named parameters.")
        properties = schema_properties(name, tools) or {}
        arguments = {
            key: undo_server_encoding(v, properties.get(key)) for key, v in decoded.items()
        }
        calls.append(ToolCall(str(raw.get("id") or new_call_id()), name, arguments))
    return calls


def declared_types(spec: Any) -> set[str]:
    """The JSON types a parameter's schema allows: its `type` (one or a list), or those of its
    `anyOf`/`oneOf` alternatives."""
    if not isinstance(spec, dict):
        return set()
    kind = spec.get("type")
    if isinstance(kind, str):
        return {kind}
    if isinstance(kind, list):
        return {str(k) for k in kind}
    alternatives = spec.get("anyOf") or spec.get("oneOf") or []
    return {t for alternative in alternatives for t in declared_types(alternative)}


def is_of_type(value: Any, kind: str) -> bool:
    expected = JSON_TYPES.get(kind)
    if expected is None:
        return False
    return isinstance(value, expected) and (kind == "boolean" or not isinstance(value, bool))


def undo_server_encoding(value: Any, spec: Any) -> Any:
    """A value as the schema means it, where a server's parser garbled it:
    - a JSON text where the schema wants an array, object, number or boolean (vLLM encoded
      `anyOf` parameters twice, vllm PR #36032) is decoded when it decodes to an allowed type;
    - a number where the schema wants only a string (SGLang read `03106` as 3106, sglang PRs
      #13411 and #15135) goes back to text; leading zeros the server dropped cannot come back.
    """
    types = declared_types(spec)
    if isinstance(value, str) and types and "string" not in types:
        try:
            decoded = json.loads(value)
        except ValueError:
            return value
        matches = any(
            isinstance(decoded, JSON_TYPES[t])
            and not (isinstance(decoded, bool) and t != "boolean")
            for t in types
            if t in JSON_TYPES
        )
        return decoded if matches or (decoded is None and "null" in types) else value
    if types == {"string"} and isinstance(value, bool):
        return "true" if value else "false"
    if types == {"string"} and isinstance(value, int | float):
        return str(value)
    return value


def check_call(call: ToolCall, tools: list[dict[str, Any]]) -> None:
    """Raise FormatError unless the call names a known tool with well-typed, complete arguments."""
    properties = schema_properties(call.name, tools)
    if properties is None:
        known = ", ".join(t["function"]["name"] for t in tools)
        raise FormatError(f"There is no tool `{call.name}`. Available tools: {known}.")
    missing = [p for p in required_parameters(call.name, tools) if p not in call.arguments]
    if missing:
        raise FormatError(f"`{call.name}` needs parameter(s): {', '.join(missing)}.")
    for key, value in call.arguments.items():
        if key not in properties:
            allowed = ", ".join(properties)
            raise FormatError(f"`{call.name}` has no parameter `{key}` (it takes: {allowed}).")
        check_type(call.name, key, value, properties[key])


def check_type(tool: str, key: str, value: Any, spec: Any) -> None:
    spec = spec if isinstance(spec, dict) else {}
    kind = spec.get("type")
    expected = JSON_TYPES.get(str(kind))
    if value is None:
        return
    wrong_bool = expected is not None and isinstance(value, bool) and bool not in expected
    if expected is not None and (wrong_bool or not isinstance(value, expected)):
        shown = json.dumps(value)[:80]
        raise FormatError(f"Parameter `{key}` of `{tool}` must be of type {kind}, got {shown}.")
    if "enum" in spec and value not in spec["enum"]:
        raise FormatError(f"Parameter `{key}` of `{tool}` must be one of {spec['enum']}.")


def tool_calls_of(
    content: str | None, native: list[dict[str, Any]], tools: list[dict[str, Any]]
) -> tuple[list[ToolCall], bool]:
    """The checked calls of a reply and whether they came from the text (raw mode fallback)."""
    if native:
        calls, from_text = parse_native_tool_calls(native, tools), False
    else:
        calls, from_text = parse_xml_tool_calls(content or "", tools)[1], True
    if not calls:
        raise FormatError(
            "Your reply has no tool call. Every reply must call exactly the tools you need, "
            f"in this format:\n{CALL_EXAMPLE}\nWhen the task is done, call `submit`."
        )
    for call in calls:
        check_call(call, tools)
    return calls, from_text
