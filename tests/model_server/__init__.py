"""A scripted OpenAI-compatible model server that answers as vLLM or SGLang with qwen3_coder."""

from tests.model_server.config import (
    ANYOF_DOUBLE_ENCODED,
    CALLS_IN_CONTENT,
    COMPAT,
    MALFORMED_PARAMETER,
    SCHEMALESS_VALUES,
    SGLANG,
    VLLM,
    ServerConfig,
)
from tests.model_server.metrics import ServerMetrics
from tests.model_server.script import BadBody, Fail, Outage, Reply, Turn
from tests.model_server.server import RefusedRequest, ScriptedModelServer
from tests.model_server.template import prompt_text
from tests.model_server.tokens import count_tokens, tokenize

__all__ = [
    "ANYOF_DOUBLE_ENCODED",
    "CALLS_IN_CONTENT",
    "COMPAT",
    "MALFORMED_PARAMETER",
    "SCHEMALESS_VALUES",
    "SGLANG",
    "VLLM",
    "BadBody",
    "Fail",
    "Outage",
    "RefusedRequest",
    "Reply",
    "ScriptedModelServer",
    "ServerConfig",
    "ServerMetrics",
    "Turn",
    "count_tokens",
    "prompt_text",
    "tokenize",
]
