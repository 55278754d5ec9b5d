"""The model client: OpenAI chat completions over httpx, with retries and token accounting."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import httpx
from pydantic import BaseModel, Field, SecretStr
from tenacity import (
    AsyncRetrying,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential_jitter,
)


class ModelConfig(BaseModel):
    """How to reach the model server and how to sample from it."""

    base_url: str = "http://127.0.0.1:8000/v1"
    """OpenAI-compatible root, ending in /v1."""
    model: str = "Qwen/Qwen3-Coder-480B-A35B-Instruct-FP8"
    """Served model name."""
    api_key: SecretStr = SecretStr("EMPTY")
    """Bearer token sent to the server."""
    temperature: float = 0.7
    """Qwen's recommended sampling temperature."""
    top_p: float = 0.8
    """Nucleus sampling mass."""
    top_k: int = 20
    """Top-k sampling; vLLM and SGLang accept it as an extra body field."""
    repetition_penalty: float = 1.05
    """Repetition penalty; an extra body field for vLLM and SGLang."""
    max_tokens: int = Field(16_384, gt=0)
    """Most tokens the model may generate in one reply."""
    timeout: float = Field(600.0, gt=0)
    """Seconds one request may take before it is retried."""
    max_retries: int = Field(5, ge=0)
    """Retries after the first attempt on 429, 5xx, timeouts and connection errors."""
    backoff_initial: float = Field(1.0, ge=0)
    """First backoff in seconds; it doubles per retry, with jitter."""
    backoff_max: float = Field(60.0, ge=0)
    """Longest backoff in seconds."""


class ModelError(Exception):
    """The model server could not produce a reply, even after retries."""


@dataclass
class Usage:
    """Tokens and time spent on model calls; one per call, summed for a run."""

    calls: int = 0
    prompt_tokens: int = 0
    cached_tokens: int = 0
    completion_tokens: int = 0
    latency: float = 0.0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def add(self, other: Usage) -> None:
        self.calls += other.calls
        self.prompt_tokens += other.prompt_tokens
        self.cached_tokens += other.cached_tokens
        self.completion_tokens += other.completion_tokens
        self.latency += other.latency


@dataclass
class ModelReply:
    """One assistant message as the server sent it."""

    content: str | None
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    finish_reason: str | None = None
    usage: Usage = field(default_factory=Usage)


def is_retryable(error: BaseException) -> bool:
    if isinstance(error, httpx.HTTPStatusError):
        status = error.response.status_code
        return status == 429 or status >= 500
    return isinstance(error, httpx.TimeoutException | httpx.TransportError)


def usage_of(body: dict[str, Any], latency: float) -> Usage:
    usage = body.get("usage") or {}
    details = usage.get("prompt_tokens_details") or {}
    return Usage(
        calls=1,
        prompt_tokens=int(usage.get("prompt_tokens") or 0),
        cached_tokens=int(details.get("cached_tokens") or 0),
        completion_tokens=int(usage.get("completion_tokens") or 0),
        latency=latency,
    )


def reply_of(body: dict[str, Any], latency: float) -> ModelReply:
    try:
        choice = body["choices"][0]
        message = choice["message"]
    except (KeyError, IndexError, TypeError) as exc:
        raise ModelError(f"malformed chat completion: {str(body)[:500]}") from exc
    return ModelReply(
        content=message.get("content"),
        tool_calls=list(message.get("tool_calls") or []),
        finish_reason=choice.get("finish_reason"),
        usage=usage_of(body, latency),
    )


class ModelClient:
    """Sends a conversation to the model and returns its reply; accumulates `usage`."""

    def __init__(self, config: ModelConfig, *, transport: httpx.AsyncBaseTransport | None = None):
        self.config = config
        self.usage = Usage()
        self._http = httpx.AsyncClient(
            base_url=config.base_url.rstrip("/") + "/",
            headers={"Authorization": f"Bearer {config.api_key.get_secret_value()}"},
            timeout=httpx.Timeout(config.timeout, connect=min(config.timeout, 10.0)),
            transport=transport,
        )

    async def __aenter__(self) -> ModelClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        await self._http.aclose()

    def request_body(
        self, messages: list[dict[str, Any]], tools: list[dict[str, Any]]
    ) -> dict[str, Any]:
        config = self.config
        body: dict[str, Any] = {"model": config.model, "messages": messages}
        body |= {"temperature": config.temperature, "top_p": config.top_p, "top_k": config.top_k}
        body |= {"repetition_penalty": config.repetition_penalty, "max_tokens": config.max_tokens}
        if tools:
            body |= {"tools": tools, "tool_choice": "auto"}
        return body

    async def complete(
        self, messages: list[dict[str, Any]], tools: list[dict[str, Any]]
    ) -> ModelReply:
        """One chat completion, retried on transient failures; raises ModelError otherwise."""
        body = self.request_body(messages, tools)
        retrying = AsyncRetrying(
            retry=retry_if_exception(is_retryable),
            stop=stop_after_attempt(self.config.max_retries + 1),
            wait=self._backoff(),
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    reply = await self._post(body)
        except httpx.HTTPStatusError as exc:
            detail = exc.response.text[:500]
            raise ModelError(f"model server answered {exc.response.status_code}: {detail}") from exc
        except httpx.HTTPError as exc:
            raise ModelError(f"model server unreachable: {type(exc).__name__}: {exc}") from exc
        self.usage.add(reply.usage)
        return reply

    def _backoff(self) -> wait_exponential_jitter:
        initial = self.config.backoff_initial
        # Jitter scaled to the first wait so many workers retrying together spread out.
        return wait_exponential_jitter(
            multiplier=initial, max=self.config.backoff_max, jitter=initial
        )

    async def _post(self, body: dict[str, Any]) -> ModelReply:
        started = time.monotonic()
        response = await self._http.post("chat/completions", json=body)
        response.raise_for_status()
        return reply_of(response.json(), time.monotonic() - started)
