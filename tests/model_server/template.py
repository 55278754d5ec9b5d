"""The prompt a request renders to: a stand-in for Qwen3-Coder's chat template.

It follows the template's shape (QwenLM Qwen3-Coder `chat_template.jinja`, from memory of its
structure): tools in the system turn, assistant tool calls re-rendered as XML from their
arguments (which therefore must be JSON objects, as vLLM's `_postprocess_messages` requires,
QwenLM/Qwen3-Coder#444), consecutive tool results merged into one user turn of
`<tool_response>` blocks, reasoning sent back rendered as `<think>...</think>` when it is in a
field the server reads, and the generation prompt at the end.
"""

from __future__ import annotations

import json
from typing import Any

from tests.model_server.config import COMPAT, ServerConfig
from tests.model_server.script import message_text

TOOLS_PREAMBLE = "\n\n# Tools\n\nYou have access to the following functions:\n\n<tools>\n"
TOOLS_INSTRUCTIONS = (
    "\n</tools>\n\nIf you choose to call a function ONLY reply in the following format with NO "
    "suffix:\n\n<tool_call>\n<function=example_function_name>\n<parameter=example_parameter_1>"
    "\nvalue_1\n</parameter>\n</function>\n</tool_call>\n\n<IMPORTANT>\nReminder:\n- Function "
    "calls MUST follow the specified format\n- Required parameters MUST be specified\n- You may "
    "provide optional reasoning for your function call in natural language BEFORE the function "
    "call, but NOT after\n</IMPORTANT>"
)
GENERATION_PROMPT = "<|im_start|>assistant\n"


class TemplateError(ValueError):
    """The request cannot be rendered (vLLM answers 400 with this message, SGLang 500)."""


def tool_arguments(call: dict[str, Any]) -> dict[str, Any]:
    """A call's arguments as the template needs them: `json.loads` of the string, as vLLM does."""
    function = call.get("function") or {}
    arguments = function.get("arguments")
    if not arguments:
        return {}
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments)
        except json.JSONDecodeError as exc:
            raise TemplateError(str(exc)) from exc
    if not isinstance(arguments, dict):
        raise TemplateError("Can only get item pairs from a mapping.")
    return arguments


def template_value(value: Any) -> str:
    """`tojson` for mappings and sequences, Jinja's `string` filter for the rest."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def render_call(call: dict[str, Any]) -> str:
    name = (call.get("function") or {}).get("name", "")
    parameters = "".join(
        f"<parameter={key}>\n{template_value(value)}\n</parameter>\n"
        for key, value in tool_arguments(call).items()
    )
    return f"\n<tool_call>\n<function={name}>\n{parameters}</function>\n</tool_call>"


def reasoning_sent_back(message: dict[str, Any], config: ServerConfig) -> str | None:
    for name in config.reasoning_input_fields:
        value = message.get(name)
        if isinstance(value, str) and value:
            return value
    return None


def render_assistant(message: dict[str, Any], config: ServerConfig) -> str:
    content = message_text(message)
    reasoning = reasoning_sent_back(message, config)
    if reasoning is not None:
        content = f"<think>\n{reasoning.strip(chr(10))}\n</think>\n\n{content.lstrip(chr(10))}"
    calls = message.get("tool_calls") or []
    if not calls:
        return f"<|im_start|>assistant\n{content}<|im_end|>\n"
    text = f"\n{content.strip()}\n" if content.strip() else ""
    return f"<|im_start|>assistant{text}{''.join(render_call(c) for c in calls)}<|im_end|>\n"


def render_tools(tools: list[dict[str, Any]]) -> str:
    listed = "\n".join(json.dumps(tool.get("function", tool), sort_keys=True) for tool in tools)
    return f"{TOOLS_PREAMBLE}{listed}{TOOLS_INSTRUCTIONS}"


def prompt_text(request: dict[str, Any], config: ServerConfig = COMPAT) -> str:
    """The rendered prompt of a chat-completion request body, generation prompt included."""
    messages = list(request.get("messages") or [])
    tools = render_tools(request["tools"]) if request.get("tools") else ""
    parts: list[str] = []
    if tools and not (messages and messages[0].get("role") == "system"):
        parts.append(f"<|im_start|>system\nYou are a helpful assistant.{tools}<|im_end|>\n")
    for index, message in enumerate(messages):
        role = message.get("role")
        if role == "system" and index == 0:
            parts.append(f"<|im_start|>system\n{message_text(message)}{tools}<|im_end|>\n")
        elif role == "assistant":
            parts.append(render_assistant(message, config))
        elif role == "tool":
            first = index == 0 or messages[index - 1].get("role") != "tool"
            last = index == len(messages) - 1 or messages[index + 1].get("role") != "tool"
            opening = "<|im_start|>user" if first else ""
            closing = "<|im_end|>\n" if last else ""
            response = f"\n<tool_response>\n{message_text(message)}\n</tool_response>"
            parts.append(f"{opening}{response}{closing}")
        else:
            parts.append(f"<|im_start|>{role}\n{message_text(message)}<|im_end|>\n")
    parts.append(GENERATION_PROMPT)
    return "".join(parts)
