"""Admission: the checks a real server runs before generating, with its exact error texts.

vLLM (v0.18+; sources: vllm-project/vllm vllm/renderers/params.py `TokenizeParams` as in the
upstream mirror eigen-hub/vllm@cca57d421f, vllm/entrypoints/openai/chat_completion/protocol.py
`build_tok_params` and serving.py `render_chat_request` at 5e918640d7b6):
- an unknown `model` is a 404 (`check_model`);
- without a tool parser, `tool_choice: "auto"` (the default when `tools` are sent) is a 400;
- `max_completion_tokens`, else `max_tokens`, else 0 output tokens are budgeted; more than
  `max_model_len` is a 400;
- the prompt is tokenized with truncation at `max_model_len - budget + 1`, so a prompt over the
  limit is always reported as "at least" that many tokens;
- tool-call arguments in the history must be JSON objects (`_postprocess_messages` calls
  `json.loads`; vllm#47761 shows the 400 "Unterminated string starting at ...").
Error body: `{"error": {"message", "type", "param", "code"}}`; a `VLLMValidationError` appends
" (parameter=..., value=...)" to the message (seen verbatim in user reports, e.g. "... for a total
of at least 262145 tokens. ... (parameter=input_tokens, value=262145)").

SGLang (sgl-project/sglang tokenizer_manager.py `_validate_one_request` at 001067fffe33,
serving_chat.py `_validate_request` at 0c078e6f4268, serving_base.py at c5695a4be1c4):
- a prompt of `context_length` tokens or more is refused, and so is prompt + `max_tokens` above
  it (no check at all when `max_tokens` is absent);
- a rendering failure is a 500 "Internal server error: ...";
Error body: `{"object": "error", "message", "type", "param": null, "code"}`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tests.model_server.config import ServerConfig
from tests.model_server.template import TemplateError, prompt_text
from tests.model_server.tokens import tokenize


@dataclass(frozen=True)
class Refusal:
    """A request the server refuses before generating; it consumes no script turn."""

    status: int
    message: str
    kind: str
    """"context_length", "max_tokens", "model", "tool_choice" or "template"."""
    param: str | None = None
    error_type: str = "BadRequestError"


@dataclass(frozen=True)
class Admission:
    """A request the server accepts: its prompt and how many tokens it may generate."""

    prompt: str
    prompt_tokens: list[str]
    limit: int


def output_budget(request: dict[str, Any]) -> tuple[int | None, str]:
    """The requested output tokens and the name of the field that asked for them."""
    if request.get("max_completion_tokens") is not None:
        return int(request["max_completion_tokens"]), "max_completion_tokens"
    if request.get("max_tokens") is not None:
        return int(request["max_tokens"]), "max_tokens"
    return None, "max_tokens"


def validation_message(message: str, parameter: str, value: int) -> str:
    """`VLLMValidationError.__str__`."""
    return f"{message} (parameter={parameter}, value={value})"


def render(request: dict[str, Any], config: ServerConfig) -> str | Refusal:
    try:
        return prompt_text(request, config)
    except TemplateError as exc:
        if config.dialect == "sglang":
            message = f"Internal server error: {exc}"
            return Refusal(500, message, "template", error_type="InternalServerError")
        return Refusal(400, str(exc), "template")


def admit(request: dict[str, Any], config: ServerConfig) -> Admission | Refusal:
    if config.dialect == "sglang":
        return admit_sglang(request, config)
    return admit_vllm(request, config)


def vllm_tool_choice_refusal(request: dict[str, Any], config: ServerConfig) -> Refusal | None:
    choice = request.get("tool_choice", "auto" if request.get("tools") else None)
    if config.tool_parser or not config.strict_tool_choice or choice in (None, "none"):
        return None
    if choice == "auto":
        message = (
            '"auto" tool choice requires --enable-auto-tool-choice and --tool-call-parser to be set'
        )
    else:
        message = f'tool_choice="{choice}" requires --tool-call-parser to be set'
    return Refusal(400, message, "tool_choice")


def vllm_context_message(limit: int, budget: int, count: int, qualifier: str) -> str:
    return (
        f"This model's maximum context length is {limit} tokens. However, you requested "
        f"{budget} output tokens and your prompt contains {qualifier}{count} input tokens, for "
        f"a total of {qualifier}{count + budget} tokens. Please reduce the length of the input "
        "prompt or the number of requested output tokens."
    )


def admit_vllm(request: dict[str, Any], config: ServerConfig) -> Admission | Refusal:
    model = request.get("model")
    if config.check_model and model is not None and model != config.model:
        message = f"The model `{model}` does not exist."
        return Refusal(404, message, "model", param="model", error_type="NotFoundError")
    refusal = vllm_tool_choice_refusal(request, config)
    if refusal is not None:
        return refusal
    requested, parameter = output_budget(request)
    budget, window = requested or 0, config.max_model_len
    if budget > window:
        message = (
            f"{parameter}={budget} cannot be greater than max_model_len=max_total_tokens="
            f"{window}. Please request fewer output tokens."
        )
        return Refusal(400, validation_message(message, parameter, budget), "max_tokens", parameter)
    prompt = render(request, config)
    if isinstance(prompt, Refusal):
        return prompt
    tokens = tokenize(prompt, config.tokenizer)
    max_input = window - budget
    if len(tokens) > max_input:
        # vLLM tokenizes with truncation at max_input + 1, so it never knows the full count.
        count = min(len(tokens), max_input + 1)
        qualifier = "at least " if count == max_input + 1 else ""
        message = vllm_context_message(window, budget, count, qualifier)
        return Refusal(
            400,
            validation_message(message, "input_tokens", count),
            "context_length",
            "input_tokens",
        )
    limit = budget or window - len(tokens)
    if limit < 1:
        # get_max_tokens gives 0 room; SamplingParams then refuses it (assumed, not traced).
        return Refusal(400, f"max_tokens must be at least 1, got {limit}.", "max_tokens")
    return Admission(prompt, tokens, limit)


def admit_sglang(request: dict[str, Any], config: ServerConfig) -> Admission | Refusal:
    window = config.max_model_len
    if not request.get("messages"):
        return Refusal(400, "Messages cannot be empty.", "messages")
    requested = request.get("max_completion_tokens") or request.get("max_tokens")
    if requested and requested > window:
        message = (
            f"max_completion_tokens is too large: {requested}.This model supports at most "
            f"{window} completion tokens."
        )
        return Refusal(400, message, "max_tokens")
    prompt = render(request, config)
    if isinstance(prompt, Refusal):
        return prompt
    tokens = tokenize(prompt, config.tokenizer)
    count = len(tokens)
    if count >= window:
        message = (
            f"The input ({count} tokens) is longer than the model's context length "
            f"({window} tokens)."
        )
        return Refusal(400, message, "context_length")
    if requested is not None and requested + count > window:
        message = (
            "Requested token count exceeds the model's maximum context length of "
            f"{window} tokens. You requested a total of {requested + count} tokens: {count} "
            f"tokens from the input messages and {requested} tokens for the completion. Please "
            "reduce the number of tokens in the input messages or the completion to fit within "
            "the limit."
        )
        return Refusal(400, message, "context_length")
    return Admission(prompt, tokens, requested or window - count)
