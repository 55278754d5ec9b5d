"""`qwen-fix doctor`: check a live setup the way a new user needs, each check ok or its exact fix.

The model server first, since it is where setups go wrong quietly: does it answer, which model
and window does it serve, do tool calls come back as calls (the parser flags), does the prefix
cache hit and say so, does a reasoning model's reasoning come back apart from its answer, how
fast is one short reply. Then the Docker engine, the sandbox image and Redis. `qwen-fix up`
runs the model checks at start and prints what is not ok as warnings.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, TextIO

from bot.settings import ModelSettings
from workers.agent.model import (
    ModelClient,
    ModelError,
    ModelReply,
    ServerInfo,
)
from workers.agent.profiles import ModelProfile
from workers.run_settings import model_config

Status = Literal["ok", "warn", "fail"]
MARKS = {"ok": "ok  ", "warn": "warn", "fail": "FAIL"}
SMALL_WINDOW = 32_768
"""Below this a run condenses often and big files hardly fit: worth a warning."""
PROBE_TOOL = {
    "type": "function",
    "function": {
        "name": "echo",
        "description": "Echo the given text back.",
        "parameters": {
            "type": "object",
            "properties": {"text": {"type": "string", "description": "What to echo."}},
            "required": ["text"],
        },
    },
}
PROBE_ASK = "Call the `echo` tool with the text `ok`. Do not answer in prose."
CACHE_PROBE = (
    "qwen-fix doctor checks the prefix cache: this message is sent twice, word for word, and "
    "the second answer should report most of it as cached. "
) * 40


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    status: Status
    detail: str
    fix: str = ""

    def line(self) -> str:
        text = f"{MARKS[self.status]}  {self.name}: {self.detail}"
        return f"{text}\n      fix: {self.fix}" if self.fix else text


async def model_checks(client: ModelClient, *, probes: bool = True) -> list[Check]:
    """Every check of the model server, in order; stops early when it does not answer.
    Without `probes`, only what `/v1/models` tells (no chat request, no GPU time)."""
    url = client.config.base_url
    try:
        started = time.monotonic()
        info = await client.server_info(refresh=True)
        elapsed = time.monotonic() - started
    except ModelError as exc:
        return [
            Check(
                "model server",
                "fail",
                f"no answer from {url}: {exc}",
                "start the server (deploy/vllm/, deploy/sglang/) or set MODEL_BASE_URL to "
                "its /v1 root",
            )
        ]
    checks = [Check("model server", "ok", f"{url} answers /v1/models in {elapsed * 1000:.0f} ms")]
    checks.append(served_model(client.config.model, info))
    checks.append(window_check(info, client))
    checks.append(profile_check(client.profile, client.config.model, client.config.profile))
    if not probes:
        return checks
    tool_reply, probe = await _probe(client, [{"role": "user", "content": PROBE_ASK}], [PROBE_TOOL])
    checks.append(probe or tool_call_check(tool_reply, client.profile))
    if client.profile.reasoning:
        checks.append(reasoning_check(tool_reply, client.profile))
    checks += await cache_and_latency_checks(client)
    return checks


def served_model(wanted: str, info: ServerInfo) -> Check:
    if wanted in info.model_ids:
        return Check("model", "ok", f"serves {wanted}")
    served = ", ".join(info.model_ids) or "nothing"
    fix = f"set MODEL_NAME to one of: {served}" if info.model_ids else "load a model"
    return Check("model", "fail", f"MODEL_NAME={wanted} is not served (it serves {served})", fix)


def window_check(info: ServerInfo, client: ModelClient) -> Check:
    if info.window is None:
        native = client.profile.native_window
        return Check(
            "window",
            "warn",
            f"the server does not say its window; the agent assumes {native:,} tokens",
            "set AGENT_CONTEXT_WINDOW to the server's --max-model-len (--context-length)",
        )
    detail = f"{info.window:,} tokens (from {info.source})"
    if info.window < SMALL_WINDOW:
        return Check(
            "window",
            "warn",
            detail + ": small, runs will condense often and big files may not fit",
            "serve a longer --max-model-len if the GPU memory allows",
        )
    return Check("window", "ok", detail)


def profile_check(profile: ModelProfile, model: str, named: str | None) -> Check:
    how = "MODEL_PROFILE" if named else f"picked from {model}"
    text = f"{profile.name} ({how}): {profile.description}"
    if profile.name == "generic":
        return Check(
            "profile",
            "warn",
            text,
            "set MODEL_PROFILE (qwen3-coder, qwen3-coder-next, qwen3.6) if this is a Qwen model",
        )
    return Check("profile", "ok", text)


def tool_call_check(reply: ModelReply | None, profile: ModelProfile) -> Check:
    if reply is None:
        return Check("tool calls", "fail", "the probe got no reply")
    if reply.tool_calls:
        name = (reply.tool_calls[0].get("function") or {}).get("name")
        return Check("tool calls", "ok", f"the server returns native tool calls ({name})")
    text = reply.answer or ""
    if "<function=" in text or "<tool_call>" in text:
        return Check(
            "tool calls",
            "warn",
            "tool calls come back as text in `content`; the agent parses them itself, but "
            "the server should",
            f"start vLLM with `{profile.vllm_flags}` (SGLang: `{profile.sglang_flags}`)",
        )
    return Check(
        "tool calls",
        "warn",
        f"the model answered without calling the probe's tool: {text[:120]!r}",
        "check that the served model is a tool-calling model and the chat template has tools",
    )


def reasoning_check(reply: ModelReply | None, profile: ModelProfile) -> Check:
    if reply is None or reply.reasoning_field is None:
        return Check("reasoning", "warn", "no reasoning came back (thinking may be off)")
    if reply.reasoning_field == "inline":
        return Check(
            "reasoning",
            "warn",
            "the reasoning comes inline in `content` (<think>…</think>)",
            f"start the server with `{profile.vllm_flags}`",
        )
    return Check("reasoning", "ok", f"reasoning comes back in `{reply.reasoning_field}`")


async def cache_and_latency_checks(client: ModelClient) -> list[Check]:
    messages = [{"role": "user", "content": CACHE_PROBE + "Answer with one word."}]
    first, failed = await _probe(client, messages, [])
    if failed is not None:
        return [failed]
    started = time.monotonic()
    second, failed = await _probe(client, messages, [])
    latency = time.monotonic() - started
    if failed is not None or first is None or second is None:
        return [failed] if failed else []
    usage = second.usage
    speed = usage.completion_tokens / latency if latency > 0 else 0.0
    checks = [
        Check(
            "latency",
            "ok" if latency < 10 else "warn",
            f"a short reply took {latency * 1000:.0f} ms ({usage.completion_tokens} tokens, "
            f"{speed:.0f} tokens/s)",
            "" if latency < 10 else "the server is slow or busy; see its /metrics",
        )
    ]
    checks.append(cache_check(second))
    return checks


def cache_check(second: ModelReply) -> Check:
    usage = second.usage
    if usage.cached_tokens > 0:
        share = usage.cached_tokens / max(usage.prompt_tokens, 1)
        return Check(
            "prefix cache",
            "ok",
            f"{usage.cached_tokens:,} of {usage.prompt_tokens:,} prompt tokens were cached "
            f"({share:.0%})",
        )
    return Check(
        "prefix cache",
        "warn",
        "the repeated prompt reported no cached tokens: prefix caching is off, or the server "
        "does not report it",
        "vLLM: keep prefix caching on (no --no-enable-prefix-caching) and add "
        "--enable-prompt-tokens-details; SGLang: keep the radix cache on",
    )


async def _probe(
    client: ModelClient, messages: list[dict[str, Any]], tools: list[dict[str, Any]]
) -> tuple[ModelReply | None, Check | None]:
    try:
        return await client.complete(messages, tools, max_tokens=256), None
    except ModelError as exc:
        return None, refusal_check(str(exc), client.profile)


def refusal_check(error: str, profile: ModelProfile) -> Check:
    """A request the server refused, read for the usual cause."""
    if "tool choice" in error.lower() or "tool-call-parser" in error:
        return Check(
            "tool calls",
            "fail",
            f"the server refuses tool calls: {error[:200]}",
            f"start vLLM with `{profile.vllm_flags}` (SGLang: `{profile.sglang_flags}`)",
        )
    return Check("request", "fail", f"a short chat request failed: {error[:300]}")


def infrastructure_checks(
    docker_factory: Callable[[], Any], image: str, redis_url: str | None
) -> list[Check]:
    """The Docker engine, the sandbox image, Redis."""
    checks = []
    try:
        client = docker_factory()
        client.ping()
    except Exception as exc:
        checks.append(
            Check(
                "docker",
                "fail",
                f"no Docker engine answers ({type(exc).__name__})",
                "start one (`systemctl start docker`) or point DOCKER_HOST at one",
            )
        )
    else:
        try:
            checks.append(Check("docker", "ok", "the engine answers"))
            checks.append(image_check(client, image))
        finally:
            client.close()
    checks.append(redis_check(redis_url))
    return checks


def image_check(client: Any, image: str) -> Check:
    import docker.errors

    try:
        client.images.get(image)
    except docker.errors.ImageNotFound:
        return Check(
            "sandbox image",
            "fail",
            f"{image} is not on this engine",
            "run `bash scripts/bootstrap` (builds it without a registry) or set SANDBOX_IMAGE",
        )
    return Check("sandbox image", "ok", image)


def redis_check(redis_url: str | None) -> Check:
    if not redis_url:
        return Check("redis", "ok", "REDIS_URL is unset: `qwen-fix up` starts its own")
    import redis

    try:
        connection = redis.Redis.from_url(redis_url, socket_connect_timeout=3)
        connection.ping()
        connection.close()
    except redis.RedisError as exc:
        return Check(
            "redis",
            "fail",
            f"no answer from REDIS_URL={redis_url} ({type(exc).__name__})",
            "start redis-server there, or unset REDIS_URL to let `qwen-fix up` start one",
        )
    return Check("redis", "ok", f"{redis_url} answers")


class DoctorSettings(ModelSettings):
    """What `qwen-fix doctor` reads: the model settings, the sandbox image and Redis."""

    sandbox_image: str = "qwen-fix-sandbox:latest"
    redis_url: str | None = None


async def run_doctor(
    settings: DoctorSettings,
    out: TextIO,
    *,
    base_url: str | None = None,
    model: str | None = None,
    infrastructure: bool = True,
    probes: bool = True,
) -> Status:
    """Print every check, one or two lines each; returns the worst status."""
    import docker

    config = model_config(settings, base_url=base_url, name=model).model_copy(
        update={"max_retries": 0, "timeout": min(settings.model_timeout, 120.0)}
    )
    async with ModelClient(config) as client:
        checks = await model_checks(client, probes=probes)
    if infrastructure:
        checks += infrastructure_checks(
            lambda: docker.from_env(timeout=5), settings.sandbox_image, settings.redis_url
        )
    for check in checks:
        print(check.line(), file=out)
    status = worst(checks)
    summary = {"ok": "all checks passed", "warn": "usable, with warnings", "fail": "not ready"}
    print(f"qwen-fix doctor: {summary[status]}", file=out)
    return status


def worst(checks: list[Check]) -> Status:
    statuses = {check.status for check in checks}
    return "fail" if "fail" in statuses else "warn" if "warn" in statuses else "ok"
