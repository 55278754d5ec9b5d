"""Model profiles: what the agent must know about each model family it may be talking to.

One profile per family: its sampling defaults (from its model card), whether it reasons and how
its reasoning travels, its tool-call format, the server flags it needs, its native window and
its default output budget. The profile is chosen from the served model's id, or named with
MODEL_PROFILE. Reasoning is never required of a model and never posted to GitHub: it is kept in
the conversation (in the field the server sent it in, which is the one it reads back) and in the
trajectory.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

QWEN3_CODER_FLAGS = "--enable-auto-tool-choice --tool-call-parser qwen3_coder"
SGLANG_QWEN3_CODER_FLAGS = "--tool-call-parser qwen3_coder"


@dataclass(frozen=True, slots=True)
class Sampling:
    """Sampling parameters sent with every request; None leaves the server's default."""

    temperature: float
    top_p: float
    top_k: int | None = None
    min_p: float | None = None
    repetition_penalty: float | None = None
    presence_penalty: float | None = None

    def body(self, *, extras: bool) -> dict[str, Any]:
        """The request fields; `extras` are vLLM/SGLang fields an OpenAI endpoint refuses."""
        fields: dict[str, Any] = {"temperature": self.temperature, "top_p": self.top_p}
        if self.presence_penalty is not None:
            fields["presence_penalty"] = self.presence_penalty
        if extras:
            extra = {
                "top_k": self.top_k,
                "min_p": self.min_p,
                "repetition_penalty": self.repetition_penalty,
            }
            fields |= {name: value for name, value in extra.items() if value is not None}
        return fields


@dataclass(frozen=True, slots=True)
class ModelProfile:
    name: str
    description: str
    patterns: tuple[str, ...]
    """Lower-case pieces of a served model id that select this profile (first match wins)."""
    sampling: Sampling
    reasoning: bool
    """Whether the model thinks before it answers (a reasoning parser should be on)."""
    output_budget: int
    """Default `max_tokens` of one reply (lowered to fit small windows)."""
    native_window: int
    """The model's own context length, used when the server does not say what it serves."""
    tool_calls: Literal["qwen3_coder", "openai"] = "qwen3_coder"
    """The tool-call format the model writes: Qwen3-Coder's XML, or OpenAI JSON only."""
    server_extras: bool = True
    """Whether the server takes vLLM/SGLang's extra sampling fields (top_k, ...)."""
    template_kwargs: Mapping[str, Any] = field(default_factory=dict)
    """`chat_template_kwargs` sent with every request."""
    vllm_flags: str = QWEN3_CODER_FLAGS
    sglang_flags: str = SGLANG_QWEN3_CODER_FLAGS


QWEN3_CODER = ModelProfile(
    name="qwen3-coder",
    description="Qwen3-Coder-480B-A35B and 30B-A3B Instruct: no reasoning, XML tool calls",
    patterns=("qwen3-coder-480b", "qwen3-coder-30b", "qwen3-coder-plus", "qwen3-coder"),
    # The model card: temperature 0.7, top_p 0.8, top_k 20, repetition_penalty 1.05.
    sampling=Sampling(temperature=0.7, top_p=0.8, top_k=20, repetition_penalty=1.05),
    reasoning=False,
    output_budget=16_384,
    native_window=262_144,
)
QWEN3_CODER_NEXT = ModelProfile(
    name="qwen3-coder-next",
    description="Qwen3-Coder-Next (80B-A3B, one GPU): no reasoning, XML tool calls",
    patterns=("qwen3-coder-next",),
    # The model's published configuration: temperature 1.0, top_p 0.95, top_k 40.
    sampling=Sampling(temperature=1.0, top_p=0.95, top_k=40),
    reasoning=False,
    output_budget=16_384,
    native_window=262_144,
)
QWEN3_REASONING = ModelProfile(
    name="qwen3.6",
    description="Qwen3.5 and Qwen3.6 (thinking by default): reasoning kept across tool turns",
    patterns=("qwen3.6", "qwen3.5", "qwen3_6", "qwen3_5"),
    # The model card's thinking-mode settings for precise coding tasks.
    sampling=Sampling(temperature=0.6, top_p=0.95, top_k=20, min_p=0.0, presence_penalty=0.0),
    reasoning=True,
    output_budget=32_768,
    native_window=262_144,
    # Keep every earlier turn's reasoning in the prompt (not only the last one's): the prompt
    # stays append-only, so the prefix cache keeps hitting, and the card recommends it for agents.
    template_kwargs={"preserve_thinking": True},
    vllm_flags=f"{QWEN3_CODER_FLAGS} --reasoning-parser qwen3",
    sglang_flags=f"{SGLANG_QWEN3_CODER_FLAGS} --reasoning-parser qwen3",
)
GENERIC = ModelProfile(
    name="generic",
    description="any OpenAI-compatible endpoint: OpenAI tool calls, standard fields only",
    patterns=(),
    sampling=Sampling(temperature=0.7, top_p=0.8),
    reasoning=False,
    output_budget=8_192,
    native_window=32_768,
    tool_calls="openai",
    server_extras=False,
    vllm_flags="--enable-auto-tool-choice --tool-call-parser <the model's parser>",
    sglang_flags="--tool-call-parser <the model's parser>",
)
PROFILES = (QWEN3_CODER_NEXT, QWEN3_REASONING, QWEN3_CODER, GENERIC)
"""In matching order: the most specific patterns first."""


class UnknownProfile(ValueError):
    """MODEL_PROFILE names no profile."""


def profile_named(name: str) -> ModelProfile:
    for profile in PROFILES:
        if profile.name == name.strip().lower():
            return profile
    known = ", ".join(p.name for p in PROFILES)
    raise UnknownProfile(f"MODEL_PROFILE={name!r} is not a profile; known: {known}")


def profile_for(model_id: str, override: str | None = None) -> ModelProfile:
    """The profile named by `override`, else the first whose pattern is in `model_id`."""
    if override:
        return profile_named(override)
    wanted = model_id.lower()
    for profile in PROFILES:
        if any(pattern in wanted for pattern in profile.patterns):
            return profile
    return GENERIC
