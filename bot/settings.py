"""Process settings, read once from the environment and `.env`; lower layers get narrow configs."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Annotated

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from bot.redaction import register_secrets
from bot.routing import Rules


class SettingsError(Exception):
    """A setting is missing or invalid; the message names the variable."""


class Settings(BaseSettings):
    """Everything the app reads from its environment. Names are the environment variables."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", case_sensitive=False)

    app_id: int = Field(description="The GitHub App's id (APP_ID).")
    private_key: SecretStr | None = Field(
        None, description="The App's PEM private key (PRIVATE_KEY); or set PRIVATE_KEY_PATH."
    )
    private_key_path: Path | None = Field(None, description="File holding the App's PEM key.")
    webhook_secret: SecretStr = Field(description="Secret GitHub signs webhooks with.")
    github_api_url: str = Field(
        "https://api.github.com",
        description="REST API root; https://HOST/api/v3 for GitHub Enterprise Server.",
    )
    redis_url: str | None = Field(
        None, description="arq's Redis; unset → `qwen-fix up` starts a local redis-server."
    )
    model_base_url: str = Field(
        "http://127.0.0.1:8000/v1", description="OpenAI-compatible endpoint serving Qwen3-Coder."
    )
    model_name: str = Field("Qwen/Qwen3-Coder-480B-A35B-Instruct-FP8")
    model_api_key: SecretStr = Field(SecretStr("EMPTY"), description="Bearer token, if any.")
    model_timeout: Annotated[float, Field(gt=0)] = 600.0

    trigger_label: str = Field("qwen-fix", description="Label that starts a job on an issue.")
    command_name: str = Field(
        "qwen-fix", description="Name of `/NAME …` and `@NAME …` commands in comments."
    )
    app_slug: str | None = Field(
        None, description="The app's slug, when it differs from the command name: @SLUG works too."
    )
    branch_prefix: str = Field("qwen-fix/", description="Prefix of the branches the app pushes.")
    web_host: str = "0.0.0.0"
    web_port: Annotated[int, Field(ge=1, le=65535)] = 3000
    metrics_port: Annotated[int, Field(ge=1, le=65535)] | None = Field(
        9100,
        description="Port of the worker's Prometheus exporter (GET /metrics), bound on WEB_HOST "
        "like the receiver; an empty METRICS_PORT= runs no exporter. The receiver serves its own "
        "/metrics on WEB_PORT.",
    )
    data_dir: Path = Field(
        Path.home() / ".cache" / "qwen-fix",
        description="Git mirrors, workspaces and trajectories live under here.",
    )

    sandbox_image: str = Field("qwen-fix-sandbox:latest", description="Default sandbox image.")
    sandbox_memory: str = "4g"
    sandbox_cpus: Annotated[float, Field(gt=0)] = 2.0
    sandbox_pids: Annotated[int, Field(gt=0)] = 512
    sandbox_lifetime: Annotated[float, Field(gt=0)] = 3600.0
    sandbox_pool_size: Annotated[int, Field(ge=0)] = Field(
        1,
        description="Sandboxes of SANDBOX_IMAGE a worker keeps started ahead of jobs, so a "
        "job's sandbox is ready in milliseconds; 0 starts each when its job needs it.",
    )

    worker_heartbeat: Annotated[float, Field(gt=0)] = Field(
        15.0,
        description="Seconds between a worker's liveness beats; the other workers remove its "
        "sandboxes four beats after it stops.",
    )

    agent_max_steps: Annotated[int, Field(gt=0)] = 100
    agent_max_tokens: Annotated[int, Field(gt=0)] = 5_000_000
    agent_wall_time: Annotated[float, Field(gt=0)] = 3600.0
    test_timeout: Annotated[float, Field(gt=0)] = 900.0

    @field_validator("metrics_port", mode="before")
    @classmethod
    def _empty_port_is_none(cls, value: object) -> object:
        # The environment cannot say None; an empty METRICS_PORT= is how it turns the exporter off.
        return None if value == "" else value

    @model_validator(mode="after")
    def _one_private_key(self) -> Settings:
        if self.private_key is None and self.private_key_path is None:
            raise ValueError("PRIVATE_KEY or PRIVATE_KEY_PATH must be set")
        path = self.private_key_path
        if self.private_key is None and path is not None and not path.is_file():
            raise ValueError(f"PRIVATE_KEY_PATH: no file at {path}")
        return self

    def routing_rules(self) -> Rules:
        return Rules(
            trigger_label=self.trigger_label,
            names=tuple(dict.fromkeys(n for n in (self.command_name, self.app_slug) if n)),
            branch_prefix=self.branch_prefix,
        )

    def secret_values(self) -> list[str]:
        """Every secret the settings hold, for redaction."""
        values = [self.webhook_secret.get_secret_value(), self.model_api_key.get_secret_value()]
        # An unreadable key file is reported where the key is used.
        with contextlib.suppress(OSError):
            if self.private_key is not None or self.private_key_path is not None:
                values.append(self.private_key_pem())
        return values

    def private_key_pem(self) -> str:
        if self.private_key is not None:
            # .env files often carry the PEM on one line with literal \n.
            return self.private_key.get_secret_value().replace("\\n", "\n")
        assert self.private_key_path is not None
        return self.private_key_path.read_text()


def load_settings(**overrides: object) -> Settings:
    """Read settings or raise SettingsError naming each bad variable. Their secrets are
    registered for redaction on every output path (bot/redaction.py)."""
    try:
        settings = Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        raise SettingsError(describe_errors(exc)) from None
    register_secrets(settings.secret_values())
    return settings


def describe_errors(exc: ValidationError) -> str:
    lines = []
    for error in exc.errors():
        name = "_".join(str(part) for part in error["loc"]).upper()
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "missing":
            message = "is required but not set"
        lines.append(f"{name} {message}" if name else message)
    return "invalid settings:\n  " + "\n  ".join(lines)
