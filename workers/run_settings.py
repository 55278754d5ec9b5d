"""From a process's settings to the narrow configs of one agent run: the model client's and the
agent's. The worker, `qwen-fix solve` and `qwen-fix eval` all build them here, so every
MODEL_* and AGENT_* setting means the same wherever the agent runs."""

from __future__ import annotations

from bot.settings import ModelSettings
from workers.agent.loop import AgentConfig
from workers.agent.model import ModelConfig


def model_config(
    settings: ModelSettings, *, base_url: str | None = None, name: str | None = None
) -> ModelConfig:
    """The model client's config; `base_url` and `name` override the settings (command line)."""
    return ModelConfig(
        base_url=base_url or settings.model_base_url,
        model=name or settings.model_name,
        api_key=settings.model_api_key,
        profile=settings.model_profile,
        max_tokens=settings.model_max_tokens,
        timeout=settings.model_timeout,
    )


def agent_config(settings: ModelSettings, *, max_steps: int | None = None) -> AgentConfig:
    """The agent's limits; `max_steps` (a command line's --max-steps) overrides the setting."""
    return AgentConfig(
        max_steps=max_steps or settings.agent_max_steps,
        max_tokens=settings.agent_max_tokens,
        wall_time=settings.agent_wall_time,
        context_window=settings.agent_context_window,
        test_timeout=settings.test_timeout,
    )
