"""ScriptedModelServer: an OpenAI-compatible HTTP server on loopback that replays a script.

It answers as the server its `ServerConfig` describes (vLLM or SGLang, with their limits, error
texts, parsers, prefix cache, reasoning fields and routes). Requests the real server would
refuse before generating (context too long, unknown model, ...) get the real error, are kept in
`refused` and consume no script turn. Fault turns make it misbehave as real servers and the
proxies in front of them do: `Fail` (an error status, with `Retry-After` if asked), `BadBody`
(a 200 that holds no completion) and `Outage` (the process goes away, and maybe comes back).
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from starlette.types import Receive, Scope, Send

from tests.model_server import dialects
from tests.model_server.admission import Admission, Refusal, admit
from tests.model_server.config import COMPAT, MODEL_NAME, ServerConfig
from tests.model_server.generation import Generation, generate
from tests.model_server.metrics import ServerMetrics, exposition
from tests.model_server.prefix_cache import PrefixCache
from tests.model_server.reasoning import missing_reasoning, thinking_enabled, where_sent_back
from tests.model_server.script import (
    BadBody,
    Fail,
    Outage,
    Reply,
    Turn,
    as_turn,
    unmet_expectation,
)
from tests.model_server.template import prompt_text
from tests.model_server.tokens import CHARS_PER_TOKEN, count_tokens, tokenize

__all__ = [
    "CHARS_PER_TOKEN",
    "MODEL_NAME",
    "RefusedRequest",
    "ScriptedModelServer",
    "approximate_tokens",
    "common_prefix_length",
    "free_port",
    "prompt_text",
]

# CHARS_PER_TOKEN, approximate_tokens and common_prefix_length stay for callers that estimate by
# characters (benchmarks/prefix_reuse.py); the server counts with tests.model_server.tokens.


def approximate_tokens(text: str) -> int:
    return (len(text) + CHARS_PER_TOKEN - 1) // CHARS_PER_TOKEN


def common_prefix_length(a: str, b: str) -> int:
    length = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        length += 1
    return length


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class RefusedRequest:
    """A request answered with an error before generation; it consumed no script turn."""

    request: dict[str, Any]
    status: int
    message: str
    kind: str


class ScriptedModelServer:
    """Replays `script` turn by turn as the server `config` describes (default: `COMPAT`).

    `mode` is the old switch, kept as an alias: "native" turns the tool parser on, "raw" off.
    """

    def __init__(
        self,
        script: Sequence[Turn],
        mode: Literal["native", "raw"] | None = None,
        *,
        config: ServerConfig | None = None,
        per_conversation: bool = False,
    ) -> None:
        config = config or COMPAT
        self.per_conversation = per_conversation
        """Every conversation replays the script from its first turn: the turn is the number
        of assistant messages in the request (for jobs run again after a crash, or many jobs)."""
        if mode is not None:
            if mode not in ("native", "raw"):
                raise ValueError(f"mode must be 'native' or 'raw', not {mode!r}")
            config = replace(config, tool_parser=mode == "native")
        self.config = config
        self.script = [as_turn(turn) for turn in script]
        self.requests: list[dict[str, Any]] = []
        """Every chat-completion request received, refused ones included."""
        self.refused: list[RefusedRequest] = []
        self.failures: list[str] = []
        self.reasoning_back: list[list[str | None]] = []
        """Per request: where each assistant message carried its reasoning ("reasoning",
        "reasoning_content", "both", "inline" or None)."""
        self.metrics = ServerMetrics()
        self.turns_used = 0
        self._emitted_reasoning: list[tuple[int, str]] = []
        self._cache = PrefixCache(config.kv_block_size)
        self._created = int(time.time())
        self._lock = threading.Lock()
        self.port = free_port()
        self.outages = 0
        """Times the server went away (`Outage` turns)."""
        self._server = self._uvicorn()
        self._thread: threading.Thread | None = None
        self._lifecycle = threading.Lock()
        self._stopped = False
        self._comeback: threading.Timer | None = None

    @property
    def mode(self) -> Literal["native", "raw"]:
        return "native" if self.config.tool_parser else "raw"

    @property
    def root_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        return f"{self.root_url}/v1"

    @property
    def remaining(self) -> int:
        return len(self.script) - self.turns_used

    def prompt_tokens(self, request: dict[str, Any]) -> int:
        """How many prompt tokens this server counts for a request body."""
        return count_tokens(prompt_text(request, self.config), self.config.tokenizer)

    def start(self) -> ScriptedModelServer:
        """Listen on `port`; after `stop` or an outage, the same server again on the same port."""
        with self._lifecycle:
            self._stopped = False
            self._listen()
        return self

    def stop(self) -> None:
        """Stop answering (requests still hanging are cancelled after a second); `start` again
        brings it back on the same port."""
        with self._lifecycle:
            self._stopped = True
            if self._comeback is not None:
                self._comeback.cancel()
            self._server.should_exit = True
            if self._thread is not None:
                self._thread.join(timeout=10)

    def _uvicorn(self) -> uvicorn.Server:
        config = uvicorn.Config(
            self._app(), host="127.0.0.1", port=self.port, log_level="warning",
            timeout_graceful_shutdown=1,
        )  # fmt: skip
        return uvicorn.Server(config)

    def _listen(self) -> None:
        if self._thread is not None:
            # The previous run (stopped, or gone in an outage) must let go of the port first.
            self._server.should_exit = True
            self._thread.join(timeout=10)
            self._server = self._uvicorn()
        self._thread = threading.Thread(target=self._server.run, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("scripted model server did not start")
            time.sleep(0.01)

    def _go_away(self, outage: Outage) -> None:
        """What a killed process leaves: the port closed and every open connection reset."""
        server = self._server
        for listener in server.servers:
            listener.close()
        for connection in list(server.server_state.connections):
            connection.transport.abort()
        server.should_exit = True
        with self._lock:
            self.outages += 1
        if outage.back_after is not None:
            self._comeback = threading.Timer(outage.back_after, self._come_back)
            self._comeback.daemon = True
            self._comeback.start()

    def _come_back(self) -> None:
        """A restarted server: same script position, cold prefix cache, counters from zero."""
        with self._lifecycle:
            if self._stopped:
                return
            with self._lock:
                self._cache = PrefixCache(self.config.kv_block_size)
                self.metrics = ServerMetrics()
            self._listen()

    def __enter__(self) -> ScriptedModelServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _app(self) -> FastAPI:
        app = FastAPI()
        app.get("/v1/models")(self._models)
        app.post("/v1/chat/completions")(self._chat_completions)
        app.get("/health")(self._health)
        app.get("/metrics")(self._metrics)
        if self.config.dialect == "sglang":
            app.get("/health_generate")(self._health)
            for route in ("/get_model_info", "/model_info"):
                app.get(route)(self._model_info)
            for route in ("/get_server_info", "/server_info"):
                app.get(route)(self._server_info)
        else:
            app.get("/version")(self._version)
        return app

    async def _models(self) -> dict[str, Any]:
        return dialects.model_list(self.config, self._created)

    async def _health(self) -> Response:
        return Response(status_code=200)

    async def _version(self) -> dict[str, Any]:
        return {"version": self.config.version}

    async def _model_info(self) -> dict[str, Any]:
        return dialects.sglang_model_info(self.config)

    async def _server_info(self) -> dict[str, Any]:
        return dialects.sglang_server_info(self.config)

    async def _metrics(self) -> Response:
        body = exposition(self.metrics, self.config)
        return Response(body, media_type="text/plain; version=0.0.4; charset=utf-8")

    async def _chat_completions(self, request: Request) -> Response:
        body = await request.json()
        with self._lock:
            self.requests.append(body)
            messages = body.get("messages") or []
            assistants = [m for m in messages if m.get("role") == "assistant"]
            self.reasoning_back.append([where_sent_back(m) for m in assistants])
        admission = admit(body, self.config)
        if isinstance(admission, Refusal):
            return self._refuse(body, admission)
        with self._lock:
            index = self.turns_used
            self.turns_used += 1
            if self.per_conversation:
                index = len([m for m in messages if m.get("role") == "assistant"])
        if index >= len(self.script):
            exhausted = f"scripted model server: script exhausted at request {index + 1}"
            return self._error(500, exhausted)
        turn = self.script[index]
        if turn.delay:
            try:
                await asyncio.sleep(turn.delay)
            except asyncio.CancelledError:
                return Response(status_code=503)  # `stop` ended the hang; the client is gone
        if isinstance(turn, Fail):
            response = self._error(turn.status, turn.message)
            if turn.retry_after is not None:
                response.headers["retry-after"] = str(turn.retry_after)
            return response
        if isinstance(turn, Outage):
            self._go_away(turn)
            await asyncio.sleep(0.1)  # the reset lands before the app could answer
            return Response(status_code=500)  # never sent: its connection is gone
        if isinstance(turn, BadBody):
            return self._bad_body(turn, index + 1, body, admission, request.scope)
        problem = self._unmet(turn, body)
        if problem is not None:
            self.failures.append(f"turn {index + 1}: {problem}")
            return self._error(500, f"scripted model server: turn {index + 1}: {problem}")
        return JSONResponse(self._respond(index + 1, turn, body, admission))

    def _bad_body(
        self,
        turn: BadBody,
        number: int,
        request: dict[str, Any],
        admission: Admission,
        scope: Scope,
    ) -> Response:
        if turn.kind == "empty":
            return Response(b"", media_type="application/json")
        # The server did generate a reply; it is lost on the way.
        whole = json.dumps(self._respond(number, Reply(""), request, admission)).encode()
        half = whole[: len(whole) // 2]
        if turn.kind == "invalid_json":
            return Response(half, media_type="application/json")
        return CutOffResponse(half, len(whole), self._connection(scope))

    def _connection(self, scope: Scope) -> asyncio.BaseTransport | None:
        """The transport under this request (uvicorn's protocols know their peer address)."""
        for connection in list(self._server.server_state.connections):
            if getattr(connection, "client", None) == scope.get("client"):
                return connection.transport
        return None

    def _unmet(self, turn: Reply, body: dict[str, Any]) -> str | None:
        problem = unmet_expectation(turn, body)
        if problem is None and turn.expect_reasoning_back:
            problem = missing_reasoning(self._emitted_reasoning, body, self.config)
        return problem

    def _refuse(self, body: dict[str, Any], refusal: Refusal) -> JSONResponse:
        with self._lock:
            self.refused.append(RefusedRequest(body, refusal.status, refusal.message, refusal.kind))
        return self._error(refusal.status, refusal.message, refusal.error_type, refusal.param)

    def _error(
        self, status: int, message: str, error_type: str | None = None, param: str | None = None
    ) -> JSONResponse:
        body = dialects.error_body(self.config, status, message, error_type, param)
        return JSONResponse(body, status_code=status)

    def completion(self, turn: Reply, request: dict[str, Any]) -> dict[str, Any]:
        """The response body this server would send for `turn`, without HTTP or a script."""
        admission = admit(request, self.config)
        if isinstance(admission, Refusal):
            raise ValueError(f"the server refuses this request: {admission.message}")
        return self._respond(self.turns_used + 1, turn, request, admission)

    def _respond(
        self, number: int, turn: Reply, request: dict[str, Any], admission: Admission
    ) -> dict[str, Any]:
        generation = generate(turn, request, self.config, admission.limit)
        prompt = admission.prompt_tokens
        with self._lock:
            cached = self._cache.cached_tokens(prompt) if self.config.prefix_caching else 0
            self._cache.add(prompt + self._generated_tokens(generation, self.config))
            self._count(len(prompt), cached, generation)
            emitted = self._emitted(turn, request, generation)
            if emitted:
                self._emitted_reasoning.append((number, emitted))
        usage = dialects.usage(self.config, len(prompt), cached, generation)
        return dialects.completion(self.config, generation, usage, request)

    @staticmethod
    def _generated_tokens(generation: Generation, config: ServerConfig) -> list[str]:
        tokens = tokenize(generation.output, config.tokenizer)
        return tokens if generation.finish_reason == "length" else [*tokens, "<|im_end|>"]

    def _count(self, prompt: int, cached: int, generation: Generation) -> None:
        self.metrics.prompt_tokens += prompt
        self.metrics.generation_tokens += generation.completion_tokens
        self.metrics.prefix_cache_queries += prompt
        self.metrics.prefix_cache_hits += cached

    def _emitted(self, turn: Reply, request: dict[str, Any], generation: Generation) -> str:
        """The reasoning the client received (in a field, or inline), to be sent back later."""
        if self.config.reasoning_parser:
            return (generation.reasoning or "").strip()
        if turn.reasoning and thinking_enabled(request) and turn.reasoning in generation.output:
            return turn.reasoning.strip()
        return ""


class CutOffResponse(Response):
    """Headers that promise `length` bytes, then `body` (fewer), then the connection closes
    (after what was sent is flushed), as a server that dies while sending."""

    def __init__(self, body: bytes, length: int, transport: asyncio.BaseTransport | None) -> None:
        super().__init__(body, media_type="application/json")
        self.length = length
        self.transport = transport

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % self.length)]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": self.body, "more_body": True})
        if self.transport is not None:
            self.transport.close()
            await asyncio.sleep(0.1)  # the server sees the connection gone before the app ends
