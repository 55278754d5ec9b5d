"""ServerConfig: which server the scripted model server plays, how it is launched, its quirks.

Presets: `VLLM` (current vLLM, as our deploy/ recipes launch it), `SGLANG` (current SGLang) and
`COMPAT`, the lenient historical shape of this fake that `ScriptedModelServer` uses when no
config is given. Each field documents the real flag or source it stands for.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

from tests.model_server.tokens import TokenRule

MODEL_NAME = "Qwen/Qwen3-Coder-480B-A35B-Instruct-FP8"

Dialect = Literal["vllm", "sglang"]
ReasoningField = Literal["reasoning", "reasoning_content", "both"]

CALLS_IN_CONTENT = "calls_in_content"
"""vllm#22975 (480B FP8 with expert parallelism): the parser is on, yet the call stays in
`content`, with no `tool_calls` and `finish_reason: "stop"`."""
MALFORMED_PARAMETER = "malformed_parameter"
"""The model drops the `>` of its last `<parameter=NAME>`. vLLM's parser then raises on
`str.index(">")` and drops every call of the reply (vllm#39771, open; fix PR #39772 closed
unmerged); SGLang's current detector skips just that parameter."""
ANYOF_DOUBLE_ENCODED = "anyof_double_encoded"
"""vLLM before PR #36032 (merged 2026-03-05): a parameter whose schema has `anyOf` and no `type`
is kept as a string, so `{"city": "Paris"}` arrives as `"{\\"city\\": \\"Paris\\"}"`. SGLang's
current detector still does this, with or without the quirk."""
SCHEMALESS_VALUES = "schemaless_values"
"""SGLang before PR #16744 (Jan 2026; #13411 and #15135 were earlier attempts): every value went
through `_safe_val` (json.loads, then ast.literal_eval, whatever the schema says), so a
string-typed `12345` became an int and `true` a bool; `03106` stayed a string only because
Python rejects leading zeros in both parsers."""
QUIRKS = frozenset({CALLS_IN_CONTENT, MALFORMED_PARAMETER, ANYOF_DOUBLE_ENCODED, SCHEMALESS_VALUES})


@dataclass(frozen=True)
class ServerConfig:
    """How the scripted server behaves; build one from a preset with `dataclasses.replace`."""

    dialect: Dialect = "vllm"
    """Response shapes, error bodies, limits and routes of vLLM or SGLang."""
    model: str = MODEL_NAME
    """The served model id (`--served-model-name`)."""
    max_model_len: int = 262144
    """vLLM `--max-model-len` / SGLang `--context-length`: prompt plus output never exceed it."""
    tool_parser: bool = True
    """`--enable-auto-tool-choice --tool-call-parser qwen3_coder` (vLLM) or `--tool-call-parser
    qwen3_coder` (SGLang). Off: the XML stays in `content` ("raw" mode)."""
    prefix_caching: bool = True
    """Prefix caching (on by default in vLLM v1; SGLang's radix cache)."""
    prompt_tokens_details: bool = True
    """vLLM `--enable-prompt-tokens-details` / SGLang `--enable-cache-report`: report
    `usage.prompt_tokens_details.cached_tokens`. Both report it only when it is above zero."""
    kv_block_size: int = 16
    """Cached tokens are whole KV blocks: 16 in vLLM, a page of 1 in SGLang by default."""
    reasoning_parser: bool = False
    """`--reasoning-parser qwen3`: reasoning goes to a field; off, it stays inline in `content`."""
    reasoning_field: ReasoningField = "reasoning"
    """Where replies carry reasoning: vLLM >= 0.16 `reasoning` (vllm#27752 renamed it, #33402
    removed the old name); SGLang and vLLM <= 0.11.0 `reasoning_content`; vLLM 0.11.1-0.15
    sent both."""
    reasoning_input_fields: tuple[str, ...] = ("reasoning",)
    """Which assistant-message fields the server reads reasoning back from. vLLM reads only
    `reasoning` and silently drops `reasoning_content` (vllm#38488, QwenLM/qwen-code#4285);
    SGLang's message model has only `reasoning_content`."""
    think_in_prompt: bool = False
    """True for templates that put `<think>\\n` in the prompt (Qwen3.5/3.6): the generated text
    then starts inside the thinking and has no `<think>` of its own."""
    quirks: frozenset[str] = frozenset()
    """Server-wide garbling modes (see the constants above); a `Reply` can add its own."""
    check_model: bool = True
    """vLLM answers 404 "The model `x` does not exist." for an unknown `model`; SGLang does not
    check it."""
    strict_tool_choice: bool = True
    """vLLM without a tool parser refuses `tool_choice: "auto"` (also implied by sending
    `tools`) with a 400; a raw-mode client must send `tool_choice: "none"`."""
    report_zero_cached: bool = False
    """Send `prompt_tokens_details: {"cached_tokens": 0}` on a cache miss. No real server does
    (vLLM sends null, SGLang null); kept for the COMPAT preset."""
    tokenizer: TokenRule = "qwen"
    """How tokens are counted (tests.model_server.tokens): "qwen" is the BPE stand-in; "chars4",
    one token per 4 characters, is the old estimate COMPAT keeps for existing tests."""
    report_window: bool = True
    """False: the window is hidden, as behind an OpenAI-compatible gateway that lists models
    without `max_model_len` (and an SGLang started without `--context-length` has
    `context_length: null` in its server info). The limit is enforced all the same."""
    max_total_num_tokens: int = 1_048_576
    """SGLang's KV pool size, as `/get_server_info` reports it (a made-up capacity)."""
    version: str = "0.30.0"
    """What `/version` (vLLM) or `/get_server_info` (SGLang) reports."""

    def __post_init__(self) -> None:
        unknown = set(self.quirks) - QUIRKS
        if unknown:
            raise ValueError(f"unknown quirks {sorted(unknown)}; known: {sorted(QUIRKS)}")
        if self.kv_block_size < 1 or self.max_model_len < 1:
            raise ValueError("kv_block_size and max_model_len must be positive")


VLLM = ServerConfig()
"""Current vLLM (v0.18+ context errors, v0.16+ `reasoning` field), launched like deploy/vllm/."""

SGLANG = ServerConfig(
    dialect="sglang",
    kv_block_size=1,
    reasoning_field="reasoning_content",
    reasoning_input_fields=("reasoning_content",),
    check_model=False,
    strict_tool_choice=False,
    version="0.5.20",
)
"""Current SGLang with `--tool-call-parser qwen3_coder --enable-cache-report --enable-metrics`."""

COMPAT = replace(
    VLLM,
    reasoning_field="both",
    reasoning_input_fields=("reasoning", "reasoning_content"),
    check_model=False,
    strict_tool_choice=False,
    report_zero_cached=True,
    tokenizer="chars4",
)
"""The lenient shape this fake always had, the default when no config is given: both reasoning
fields in replies (as vLLM 0.11.1-0.15), `cached_tokens: 0` on a miss, any model name,
`tool_choice: "auto"` accepted in raw mode, and tokens counted as characters / 4 (real Qwen
counts digits one by one, so number-heavy output costs far more). Window limits, truncation and
block-rounded caching apply as in VLLM, on those counts. Prefer `VLLM` or `SGLANG` in new
tests."""
