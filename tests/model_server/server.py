"""ScriptedModelServer: an OpenAI-compatible HTTP server on loopback that replays a script."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
import uuid
from typing import Any, Literal

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from tests.model_server.script import Fail, Reply, Turn, as_turn, message_text, unmet_expectation
from tests.model_server.vllm_qwen3coder import extract_tool_calls

CHARS_PER_TOKEN = 4
MODEL_NAME = "Qwen/Qwen3-Coder-480B-A35B-Instruct-FP8"


def approximate_tokens(text: str) -> int:
    return (len(text) + CHARS_PER_TOKEN - 1) // CHARS_PER_TOKEN


def prompt_text(request: dict[str, Any]) -> str:
    """A stand-in for the rendered chat template: tools then every message, in order."""
    parts = [json.dumps(request.get("tools") or [], sort_keys=True)]
    for message in request.get("messages") or []:
        parts.append(f"<|im_start|>{message.get('role')}\n{message_text(message)}")
        if message.get("tool_calls"):
            parts.append(json.dumps(message["tool_calls"], sort_keys=True))
    return "\n".join(parts)


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


class ScriptedModelServer:
    """Replays `script` turn by turn; "native" mode parses tool calls as vLLM's qwen3_coder."""

    def __init__(self, script: list[Turn], mode: Literal["native", "raw"] = "native") -> None:
        self.script = [as_turn(turn) for turn in script]
        self.mode = mode
        self.requests: list[dict[str, Any]] = []
        self.failures: list[str] = []
        self._previous_prompt = ""
        self._lock = threading.Lock()
        self.port = free_port()
        self._server = uvicorn.Server(
            uvicorn.Config(self._app(), host="127.0.0.1", port=self.port, log_level="warning")
        )
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def remaining(self) -> int:
        return len(self.script) - len(self.requests)

    def start(self) -> ScriptedModelServer:
        self._thread = threading.Thread(target=self._server.run, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("scripted model server did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)

    def __enter__(self) -> ScriptedModelServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _app(self) -> FastAPI:
        app = FastAPI()
        app.get("/v1/models")(self._models)
        app.post("/v1/chat/completions")(self._chat_completions)
        return app

    async def _models(self) -> dict[str, Any]:
        model = {"id": MODEL_NAME, "object": "model", "created": int(time.time())}
        model |= {"owned_by": "vllm", "root": MODEL_NAME, "parent": None, "max_model_len": 262144}
        return {"object": "list", "data": [model]}

    async def _chat_completions(self, request: Request) -> JSONResponse:
        body = await request.json()
        with self._lock:
            index = len(self.requests)
            self.requests.append(body)
        if index >= len(self.script):
            exhausted = f"scripted model server: script exhausted at request {index + 1}"
            return self._error(500, exhausted)
        turn = self.script[index]
        if turn.delay:
            await asyncio.sleep(turn.delay)
        if isinstance(turn, Fail):
            return self._error(turn.status, turn.message)
        problem = unmet_expectation(turn, body)
        if problem is not None:
            self.failures.append(f"turn {index + 1}: {problem}")
            return self._error(500, f"scripted model server: turn {index + 1}: {problem}")
        return JSONResponse(self.completion(turn, body))

    def _error(self, status: int, message: str) -> JSONResponse:
        error = {"object": "error", "message": message, "type": "BadRequestError", "param": None}
        return JSONResponse(error | {"code": status}, status_code=status)

    def completion(self, turn: Reply, request: dict[str, Any]) -> dict[str, Any]:
        """The response body vLLM would send for this generated text."""
        message, finish_reason = self._message(turn.text, request)
        choice = {"index": 0, "message": message, "logprobs": None}
        choice |= {"finish_reason": finish_reason, "stop_reason": None}
        return {
            "id": f"chatcmpl-{uuid.uuid4().hex}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": request.get("model") or MODEL_NAME,
            "choices": [choice],
            "usage": self._usage(turn.text, request),
            "prompt_logprobs": None,
            "kv_transfer_params": None,
        }

    def _message(self, text: str, request: dict[str, Any]) -> tuple[dict[str, Any], str]:
        message: dict[str, Any] = {"role": "assistant", "reasoning_content": None}
        tools = request.get("tools")
        parse = self.mode == "native" and tools and request.get("tool_choice") != "none"
        if not parse:
            return message | {"content": text, "tool_calls": []}, "stop"
        extracted = extract_tool_calls(text, request.get("tools"))
        if not extracted.tools_called:
            return message | {"content": extracted.content, "tool_calls": []}, "stop"
        message |= {"content": extracted.content, "tool_calls": extracted.tool_calls}
        return message, "tool_calls"

    def _usage(self, text: str, request: dict[str, Any]) -> dict[str, Any]:
        prompt = prompt_text(request)
        with self._lock:
            cached = common_prefix_length(prompt, self._previous_prompt) // CHARS_PER_TOKEN
            self._previous_prompt = prompt
        prompt_tokens = approximate_tokens(prompt)
        completion_tokens = approximate_tokens(text)
        return {
            "prompt_tokens": prompt_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
            "completion_tokens": completion_tokens,
            "prompt_tokens_details": {"cached_tokens": cached},
        }
