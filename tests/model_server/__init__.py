"""A scripted OpenAI-compatible model server answering as vLLM does with the qwen3_coder parser."""

from tests.model_server.script import Fail, Reply, Turn
from tests.model_server.server import ScriptedModelServer

__all__ = ["Fail", "Reply", "ScriptedModelServer", "Turn"]
