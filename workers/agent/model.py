"""The model client: OpenAI chat completions over httpx, with retries and token accounting."""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
import structlog
from pydantic import BaseModel, Field, SecretStr
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential_jitter,
)

from workers.agent.profiles import profile_for

log = structlog.get_logger("qwen_fix.model")


class ModelConfig(BaseModel):
    """How to reach the model server; how to sample comes from the model's profile."""

    base_url: str = "http://127.0.0.1:8000/v1"
    """OpenAI-compatible root, ending in /v1."""
    model: str = "Qwen/Qwen3-Coder-480B-A35B-Instruct-FP8"
    """Served model name."""
    api_key: SecretStr = SecretStr("EMPTY")
    """Bearer token sent to the server."""
    profile: str | None = None
    """MODEL_PROFILE: a profile's name (workers/agent/profiles.py); None picks it from `model`."""
    max_tokens: int | None = Field(None, gt=0)
    """Most tokens of one reply; None: the profile's output budget (lowered for small windows)."""
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


class MalformedReply(ModelError):
    """A 200 whose body is no chat completion (empty, cut short, not JSON): retried like a 5xx,
    since a proxy or a server going down sends these, not the model."""


class ContextTooLong(ModelError):
    """The server refused the request as longer than its window (a 400, not retried)."""

    def __init__(
        self,
        message: str,
        *,
        prompt_tokens: int | None,
        window: int | None,
        at_least: bool = False,
    ) -> None:
        super().__init__(message)
        self.prompt_tokens = prompt_tokens
        """The prompt's size in the server's own count, when its message says."""
        self.window = window
        self.at_least = at_least
        """The count is a lower bound: vLLM stops counting at the window less `max_tokens`."""


CONTEXT_REFUSALS = re.compile(
    r"maximum context length|maximum model length|longer than the model's context length|"
    r"cannot be greater than max_model_len|max_completion_tokens is too large|"
    r"exceeds the maximum allowed length",
    re.IGNORECASE,
)
PROMPT_COUNTS = (
    # vLLM >= 0.18: "... your prompt contains at least 32000 input tokens ..." (a lower bound).
    (re.compile(r"prompt contains at least (\d+) input tokens"), True),
    # SGLang: "The input (40000 tokens) is longer than the model's context length ..."
    (re.compile(r"The input \((\d+) tokens\)"), False),
    # SGLang: "... 31000 tokens from the input messages ..."; older vLLM: "(16616 in the messages"
    (re.compile(r"(\d+) tokens from the input"), False),
    (re.compile(r"(\d+) in the messages"), False),
)
WINDOWS = (
    re.compile(r"maximum context length (?:is|of) (\d+)"),
    re.compile(r"context length \((\d+) tokens\)"),
    re.compile(r"max_model_len=(?:\w+=)*(\d+)"),
)


def context_refusal(status: int, text: str) -> ContextTooLong | None:
    """The server's 400 for a request that does not fit its window, read; else None."""
    if status != 400 or not CONTEXT_REFUSALS.search(text):
        return None
    prompt, at_least = None, False
    for pattern, lower_bound in PROMPT_COUNTS:
        found = pattern.search(text)
        if found:
            prompt, at_least = int(found.group(1)), lower_bound
            break
    window = next((int(m.group(1)) for p in WINDOWS if (m := p.search(text))), None)
    return ContextTooLong(
        f"the model server refused the prompt as too long for its window: {text[:300]}",
        prompt_tokens=prompt,
        window=window,
        at_least=at_least,
    )


NO_TOOL_PARSER = re.compile(r"tool choice requires --enable-auto-tool-choice", re.IGNORECASE)
"""vLLM started without a tool parser refuses `tool_choice: "auto"`."""


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

    @property
    def billable_tokens(self) -> int:
        """What a run costs: prompt tokens the server computed afresh, and completion tokens.
        Cached prompt tokens are counted (and priced) apart."""
        return self.prompt_tokens - self.cached_tokens + self.completion_tokens

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
    reasoning: str | None = None
    """The model's thinking, if it sent any: from a field, or inline before `</think>`."""
    reasoning_field: str | None = None
    """Where it came: "reasoning" (vLLM), "reasoning_content" (SGLang, older vLLM), "inline"
    (in `content`, no reasoning parser), or None. It goes back in the same place."""

    @property
    def empty(self) -> bool:
        """Nothing came back, in a 200 all the same: no text, no reasoning, no tool call."""
        return not (self.content or "").strip() and not self.reasoning and not self.tool_calls

    @property
    def answer(self) -> str | None:
        """The content without inline reasoning: what tool calls are parsed from."""
        if self.reasoning_field != "inline" or self.content is None:
            return self.content
        return self.content.split(THINK_END, 1)[1].lstrip("\n")


THINK_START, THINK_END = "<think>", "</think>"
REASONING_FIELDS = ("reasoning", "reasoning_content")


def is_retryable(error: BaseException) -> bool:
    if isinstance(error, httpx.HTTPStatusError):
        status = error.response.status_code
        return status == 429 or status >= 500
    return isinstance(error, httpx.TimeoutException | httpx.TransportError | MalformedReply)


def failure(error: BaseException | None, timeout: float | None = None) -> str:
    """A failed request in a few words."""
    if isinstance(error, httpx.HTTPStatusError):
        return f"answered {error.response.status_code}"
    if isinstance(error, httpx.ConnectError):
        return "refused the connection (is it running?)"
    if isinstance(error, httpx.TimeoutException):
        within = f" within {timeout:g} s (MODEL_TIMEOUT)" if timeout is not None else " in time"
        return f"did not answer{within}"
    if isinstance(error, httpx.RemoteProtocolError | httpx.ReadError):
        return f"dropped the connection ({type(error).__name__}: {error})"
    if isinstance(error, MalformedReply):
        return f"sent no chat completion: {error}"
    return f"{type(error).__name__}: {error}"


def retry_after(error: BaseException | None, now: datetime | None = None) -> float | None:
    """Seconds the server asked to wait in its `Retry-After` header (seconds or an HTTP date)."""
    if not isinstance(error, httpx.HTTPStatusError):
        return None
    value = error.response.headers.get("retry-after", "").strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
    return max(seconds, 0.0) if math.isfinite(seconds) else None


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


def reply_of(body: Any, latency: float) -> ModelReply:
    choices = body.get("choices") if isinstance(body, dict) else None
    choice = choices[0] if isinstance(choices, list) and choices else None
    message = choice.get("message") if isinstance(choice, dict) else None
    if not isinstance(choice, dict) or not isinstance(message, dict):
        raise MalformedReply(f"no choices[0].message in {str(body)[:300]}")
    content = message.get("content")
    reasoning, where = None, None
    for name in REASONING_FIELDS:
        if message.get(name):
            reasoning, where = str(message[name]), name
            break
    if where is None and isinstance(content, str) and THINK_END in content:
        # No reasoning parser on the server: the thinking is in the text, before </think>.
        reasoning = content.split(THINK_END, 1)[0].replace(THINK_START, "", 1).strip()
        where = "inline"
    return ModelReply(
        content=content,
        tool_calls=list(message.get("tool_calls") or []),
        finish_reason=choice.get("finish_reason"),
        usage=usage_of(body, latency),
        reasoning=reasoning,
        reasoning_field=where,
    )


@dataclass(frozen=True, slots=True)
class ServerInfo:
    """What the model server says it serves."""

    model_ids: tuple[str, ...]
    window: int | None
    """`max_model_len`: prompt plus `max_tokens` of one request never exceed it."""
    source: str
    """Where the window was read, for messages (`/v1/models`, `/get_model_info`, ...)."""


WINDOW_KEYS = ("max_model_len", "context_length", "max_context_length", "context_len")
SGLANG_INFO_ROUTES = ("get_model_info", "model_info", "get_server_info", "server_info")


def window_in(record: object) -> int | None:
    """The first window-like number in a model card or server-info record."""
    if not isinstance(record, dict):
        return None
    for key in WINDOW_KEYS:
        value = record.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return None


KEEP_ALIVE = 128
"""Idle connections kept to the model server: more than a worker's concurrent sessions."""


class ModelClient:
    """Sends a conversation to the model and returns its reply; accumulates `usage`."""

    def __init__(
        self,
        config: ModelConfig,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        on_retry: Callable[[str], None] | None = None,
    ):
        self.config = config
        self.on_retry = on_retry
        """Told, in one line, each time a request is about to be retried (`solve` shows it)."""
        self.profile = profile_for(config.model, config.profile)
        self.usage = Usage()
        self.tool_choice = "auto"
        """"none" once the server said it has no tool parser: the tools still reach the prompt
        and the calls come back as text, which the agent parses itself."""
        self._info: ServerInfo | None = None
        self._http = httpx.AsyncClient(
            base_url=config.base_url.rstrip("/") + "/",
            headers={"Authorization": f"Bearer {config.api_key.get_secret_value()}"},
            timeout=httpx.Timeout(config.timeout, connect=min(config.timeout, 10.0)),
            # httpx keeps 20 idle connections by default: with more sessions than that in a
            # worker, nearly every step opened a new one (deploy/SCALING.md).
            limits=httpx.Limits(max_connections=None, max_keepalive_connections=KEEP_ALIVE),
            transport=transport,
        )

    async def __aenter__(self) -> ModelClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        await self._http.aclose()

    @property
    def output_budget(self) -> int:
        return self.config.max_tokens or self.profile.output_budget

    def request_body(
        self,
        messages: list[dict[str, Any]],
        tools: list[dict[str, Any]],
        max_tokens: int | None = None,
    ) -> dict[str, Any]:
        profile = self.profile
        body: dict[str, Any] = {"model": self.config.model, "messages": messages}
        body |= profile.sampling.body(extras=profile.server_extras)
        body["max_tokens"] = max_tokens or self.output_budget
        if profile.template_kwargs:
            body["chat_template_kwargs"] = dict(profile.template_kwargs)
        if tools:
            body |= {"tools": tools, "tool_choice": self.tool_choice}
        return body

    async def server_info(self, *, refresh: bool = False) -> ServerInfo:
        """The served model ids and window, asked once (`/v1/models`, then SGLang's routes)."""
        if self._info is not None and not refresh:
            return self._info
        try:
            response = await self._http.get("models")
            response.raise_for_status()
            cards = response.json().get("data") or []
        except (httpx.HTTPError, ValueError, AttributeError) as exc:
            raise ModelError(self._unreachable(exc)) from exc
        ids = tuple(str(card.get("id")) for card in cards if isinstance(card, dict))
        mine = [c for c in cards if isinstance(c, dict) and c.get("id") == self.config.model]
        window = next((w for c in mine or cards if (w := window_in(c)) is not None), None)
        source = "/v1/models"
        if window is None:
            window, source = await self._sglang_window()
        self._info = ServerInfo(ids, window, source)
        return self._info

    async def _sglang_window(self) -> tuple[int | None, str]:
        root = str(self._http.base_url).rstrip("/").removesuffix("/v1")
        for route in SGLANG_INFO_ROUTES:
            try:
                response = await self._http.get(f"{root}/{route}")
                if response.status_code == 200:
                    window = window_in(response.json())
                    if window is not None:
                        return window, f"/{route}"
            except (httpx.HTTPError, ValueError):
                continue
        return None, "nowhere"

    async def complete(
        self,
        messages: list[dict[str, Any]],
        tools: list[dict[str, Any]],
        *,
        max_tokens: int | None = None,
    ) -> ModelReply:
        """One chat completion, retried on transient failures; raises ContextTooLong when the
        server refuses the prompt as too long, ModelError otherwise."""
        try:
            reply = await self._complete(self.request_body(messages, tools, max_tokens))
        except ModelError as exc:
            if not (tools and self.tool_choice == "auto" and NO_TOOL_PARSER.search(str(exc))):
                raise
            # No tool parser on the server: ask for text and parse the calls here.
            self.tool_choice = "none"
            reply = await self._complete(self.request_body(messages, tools, max_tokens))
        self.usage.add(reply.usage)
        return reply

    async def _complete(self, body: dict[str, Any]) -> ModelReply:
        retrying = AsyncRetrying(
            retry=retry_if_exception(is_retryable),
            stop=stop_after_attempt(self.config.max_retries + 1),
            wait=self._wait,
            before_sleep=self._retrying,
            reraise=True,
        )
        started = time.monotonic()
        try:
            async for attempt in retrying:
                with attempt:
                    return await self._post(body)
        except httpx.HTTPStatusError as exc:
            status, detail = exc.response.status_code, exc.response.text[:500]
            too_long = context_refusal(status, detail)
            if too_long is not None:
                raise too_long from exc
            if not is_retryable(exc):
                raise ModelError(f"model server answered {status}: {detail}") from exc
            raise ModelError(self._gave_up(retrying, started, exc, f": {detail}")) from exc
        except (httpx.HTTPError, MalformedReply) as exc:
            raise ModelError(self._gave_up(retrying, started, exc)) from exc
        raise ModelError("no attempt was made")  # unreachable: tenacity makes at least one

    def _gave_up(
        self, retrying: AsyncRetrying, started: float, error: BaseException, detail: str = ""
    ) -> str:
        """Why the last attempt failed, naming the server, the setting and the retries spent."""
        attempts = int(retrying.statistics.get("attempt_number", 1))
        reached = "could not be reached" if isinstance(error, httpx.TransportError) else "failed"
        tries = f"{attempts} attempt{'s' if attempts != 1 else ''}"
        return (
            f"the model server at {self.config.base_url} (MODEL_BASE_URL) {reached}: gave up "
            f"after {attempts - 1} retries ({tries} in {time.monotonic() - started:.0f} s); "
            f"the last attempt {failure(error, self.config.timeout)}{detail}"
        )

    def _wait(self, state: RetryCallState) -> float:
        """Exponential backoff with jitter, or longer if the server said so in `Retry-After`
        (a gateway's 503, a 429), never beyond `backoff_max`."""
        backoff = float(self._backoff()(state))
        error = state.outcome.exception() if state.outcome is not None else None
        asked = retry_after(error)
        return backoff if asked is None else max(backoff, min(asked, self.config.backoff_max))

    def _retrying(self, state: RetryCallState) -> None:
        """Say so, from the first failure: a wait nobody sees looks like a hang."""
        error = state.outcome.exception() if state.outcome is not None else None
        wait = state.next_action.sleep if state.next_action is not None else 0.0
        text = (
            f"model server at {self.config.base_url}: {failure(error, self.config.timeout)}; "
            f"retrying in {wait:.0f} s "
            f"(attempt {state.attempt_number + 1} of {self.config.max_retries + 1})"
        )
        log.warning("model.retrying", detail=text)
        if self.on_retry is not None:
            self.on_retry(text)

    def _unreachable(self, exc: BaseException) -> str:
        return (
            f"model server unreachable at {self.config.base_url} (MODEL_BASE_URL): "
            f"{type(exc).__name__}: {exc}"
        )

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
        try:
            completion = response.json()
        except ValueError as exc:
            shown = repr(response.text[:120]) if response.text else "an empty body"
            raise MalformedReply(f"a {response.status_code} with {shown}, not JSON") from exc
        return reply_of(completion, time.monotonic() - started)
