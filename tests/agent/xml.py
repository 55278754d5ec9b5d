"""Writing model turns in Qwen3-Coder's tool-call format, as the real model emits them."""

from __future__ import annotations

import json
from typing import Any


def tool_call(name: str, **parameters: Any) -> str:
    """One `<tool_call>` block; non-string values are written as JSON, as the model does."""
    lines = ["<tool_call>", f"<function={name}>"]
    for key, value in parameters.items():
        text = value if isinstance(value, str) else json.dumps(value)
        lines += [f"<parameter={key}>", text, "</parameter>"]
    return "\n".join([*lines, "</function>", "</tool_call>"])


def turn(thought: str, name: str, **parameters: Any) -> str:
    """Some prose, then one call: the usual shape of a Qwen3-Coder turn."""
    return f"{thought}\n\n{tool_call(name, **parameters)}"
