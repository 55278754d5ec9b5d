"""The client-side Qwen3-Coder parser: both formats, schema conversions, malformed calls."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.model_server.vllm_qwen3coder import extract_tool_calls
from workers.agent.toolcall import (
    FormatError,
    check_call,
    parse_native_tool_calls,
    parse_xml_tool_calls,
    tool_calls_of,
)

EDIT = """I will fix the comparison.

<tool_call>
<function=str_replace_editor>
<parameter=command>
str_replace
</parameter>
<parameter=path>
calc.py
</parameter>
<parameter=old_str>
    return a - b

</parameter>
<parameter=new_str>
    return a + b
</parameter>
</function>
</tool_call>"""

TWO_CALLS = """<tool_call>
<function=bash>
<parameter=command>
ls
</parameter>
<parameter=timeout>
30
</parameter>
</function>
</tool_call>
<tool_call>
<function=str_replace_editor>
<parameter=command>
view
</parameter>
<parameter=path>
README.md
</parameter>
<parameter=view_range>
[1, 20]
</parameter>
</function>
</tool_call>"""

TODO = """<function=todo>
<parameter=command>
set
</parameter>
<parameter=items>
[{"content": "reproduce", "status": "in_progress"}, {"content": "fix"}]
</parameter>
</function>"""


def test_text_before_the_call_is_content_and_one_newline_is_stripped(tools: list[Any]) -> None:
    content, calls = parse_xml_tool_calls(EDIT, tools)
    assert content == "I will fix the comparison.\n\n"
    [call] = calls
    assert call.name == "str_replace_editor"
    assert call.arguments["path"] == "calc.py"
    # Only one leading and one trailing newline go; the blank line the model meant stays.
    assert call.arguments["old_str"] == "    return a - b\n"
    assert call.arguments["new_str"] == "    return a + b"


def test_several_calls_are_converted_by_schema(tools: list[Any]) -> None:
    _, calls = parse_xml_tool_calls(TWO_CALLS, tools)
    assert [c.name for c in calls] == ["bash", "str_replace_editor"]
    assert calls[0].arguments == {"command": "ls", "timeout": 30}
    assert calls[1].arguments["view_range"] == [1, 20]


def test_function_without_tool_call_tags_and_json_array(tools: list[Any]) -> None:
    content, [call] = parse_xml_tool_calls(TODO, tools)
    assert content == ""
    assert call.arguments["items"][0] == {"content": "reproduce", "status": "in_progress"}


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("null", None), ("true", True), ("False", False), ("7", 7), ("seven", "seven")],
)
def test_scalar_conversions(tools: list[Any], raw: str, expected: Any) -> None:
    schema = {
        "type": "function",
        "function": {
            "name": "f",
            "parameters": {"properties": {"n": {"type": "integer"}, "b": {"type": "boolean"}}},
        },
    }
    key = "b" if raw.lower() in ("true", "false") else "n"
    _, [call] = parse_xml_tool_calls(
        f"<function=f><parameter={key}>{raw}</parameter></function>", [schema]
    )
    assert call.arguments[key] == expected


def test_number_and_python_literal_object() -> None:
    schema = {
        "type": "function",
        "function": {
            "name": "f",
            "parameters": {
                "properties": {
                    "x": {"type": "number"},
                    "y": {"type": "number"},
                    "o": {"type": "object"},
                }
            },
        },
    }
    text = (
        "<function=f><parameter=x>2.5</parameter><parameter=y>3.0</parameter>"
        "<parameter=o>{'a': (1, 2)}</parameter></function>"
    )
    _, [call] = parse_xml_tool_calls(text, [schema])
    assert call.arguments == {"x": 2.5, "y": 3, "o": {"a": (1, 2)}}


def test_a_call_without_its_closing_tags_was_cut_off_and_is_not_run(tools: list[Any]) -> None:
    """vLLM takes it for a whole call; a reply cut at the output limit would then write a
    truncated file. Closing tags other than </function> may still be left out."""
    cut = "<tool_call>\n<function=str_replace_editor>\n<parameter=command>\ncreate\n</parameter>\n"
    cut += "<parameter=path>\na.py\n</parameter>\n<parameter=file_text>\ndef f():\n    ret"
    assert extract_tool_calls(cut, tools).tools_called  # what the server would have run
    with pytest.raises(FormatError, match="cut off"):
        parse_xml_tool_calls(cut, tools)
    _, [call] = parse_xml_tool_calls("<function=bash>\n<parameter=command>\nls\n</function>", tools)
    assert call.arguments == {"command": "ls"}


@pytest.mark.parametrize("text", [EDIT, TWO_CALLS, TODO])
def test_agrees_with_the_vllm_parser(tools: list[Any], text: str) -> None:
    server_side = extract_tool_calls(text, tools)
    content, calls = parse_xml_tool_calls(text, tools)
    assert [json.loads(c["function"]["arguments"]) for c in server_side.tool_calls] == [
        c.arguments for c in calls
    ]
    assert (server_side.content or "") == content


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("<tool_call>\n<function=bash\n<parameter=command>ls", "missing the `>`"),
        ("<tool_call>\nbash ls\n</tool_call>", "holds no `<function=NAME>`"),
        ("<function=bash><parameter=command>a</parameter><parameter=command>b", "given twice"),
        ("<function=rm -rf>\n</function>", "does not name a tool"),
        ("<function=bash><parameter=com mand>ls</parameter></function>", "not a well-formed"),
    ],
)
def test_malformed_xml_gives_a_precise_format_error(
    tools: list[Any], text: str, message: str
) -> None:
    with pytest.raises(FormatError, match=message):
        parse_xml_tool_calls(text, tools)


def test_native_calls_keep_their_ids(tools: list[Any]) -> None:
    raw = [
        {
            "id": "chatcmpl-tool-1",
            "type": "function",
            "function": {"name": "bash", "arguments": '{"command": "ls"}'},
        }
    ]
    [call] = parse_native_tool_calls(raw, tools)
    assert (call.id, call.name, call.arguments) == ("chatcmpl-tool-1", "bash", {"command": "ls"})


def test_native_arguments_that_are_not_json(tools: list[Any]) -> None:
    raw = [{"id": "x", "function": {"name": "bash", "arguments": '{"command": '}}]
    with pytest.raises(FormatError, match="not valid JSON"):
        parse_native_tool_calls(raw, tools)


@pytest.mark.parametrize(
    ("name", "arguments", "message"),
    [
        ("grep", {}, "no tool `grep`"),
        ("bash", {}, "needs parameter"),
        ("bash", {"command": "ls", "cwd": "/"}, "no parameter `cwd`"),
        ("bash", {"command": "ls", "timeout": "soon"}, "must be of type integer"),
        ("todo", {"command": "erase"}, "must be one of"),
        ("bash", {"command": "ls", "timeout": True}, "must be of type integer"),
    ],
)
def test_checks_name_required_and_types(
    tools: list[Any], name: str, arguments: dict[str, Any], message: str
) -> None:
    from workers.agent.toolcall import ToolCall

    with pytest.raises(FormatError, match=message):
        check_call(ToolCall("id", name, arguments), tools)


def test_a_reply_without_any_call_is_a_format_error(tools: list[Any]) -> None:
    with pytest.raises(FormatError, match="no tool call"):
        tool_calls_of("I think the bug is in calc.py.", [], tools)


def test_text_fallback_is_used_when_no_native_calls(tools: list[Any]) -> None:
    calls, from_text = tool_calls_of(TWO_CALLS, [], tools)
    assert from_text and len(calls) == 2
