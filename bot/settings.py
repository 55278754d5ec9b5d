"""Process settings, read once from the environment and `.env`; lower layers get narrow configs."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from bot.redaction import register_secrets
from bot.routing import Rules


class SettingsError(Exception):
    """A setting is missing or invalid; the message names the variable."""


DEFAULT_MODEL_URL = "http://127.0.0.1:8000/v1"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379"
"""Where `qwen-fix web` and `worker` look for Redis when REDIS_URL is unset."""


def http_url(value: str) -> str:
    """`value` if it is an http(s) URL with a host; raises ValueError saying how one looks."""
    url = urlsplit(value.strip())
    if url.scheme not in ("http", "https") or not url.hostname:
        raise ValueError(f"{value!r} is not an http(s) URL: write https://HOST[:PORT]/PATH")
    return value.strip()


def private_key_problem(pem: str) -> str | None:
    """Why `pem` is not an RSA private key in PEM (GitHub Apps use RSA), or None."""
    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    if "-----BEGIN" not in pem:
        return "no -----BEGIN ... PRIVATE KEY----- line"
    try:
        key = load_pem_private_key(pem.strip().encode(), password=None)
    except (ValueError, TypeError) as exc:
        return f"it does not parse: {str(exc).splitlines()[0][:80]}"
    if not isinstance(key, RSAPrivateKey):
        return f"it is a {type(key).__name__.removeprefix('_')}, not an RSA key"
    return None


MODEL_PROFILES = ("qwen3-coder", "qwen3-coder-next", "qwen3.6", "generic")
"""The names of workers/agent/profiles.py's profiles (bot/ may not import it; a test keeps
the two the same)."""


class ModelSettings(BaseSettings):
    """The model server and the agent's limits: what the worker, `solve` and `eval` all read."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", case_sensitive=False)

    model_base_url: str = Field(
        DEFAULT_MODEL_URL, description="OpenAI-compatible endpoint serving Qwen3-Coder."
    )
    model_name: str = Field("Qwen/Qwen3-Coder-480B-A35B-Instruct-FP8")
    model_api_key: SecretStr = Field(SecretStr("EMPTY"), description="Bearer token, if any.")
    model_timeout: Annotated[float, Field(gt=0)] = 600.0
    model_profile: str | None = Field(
        None,
        description="The model family's profile (qwen3-coder, qwen3-coder-next, qwen3.6, "
        "generic); unset, it is chosen from MODEL_NAME.",
    )
    model_max_tokens: Annotated[int, Field(gt=0)] | None = Field(
        None, description="Most tokens of one reply; unset, the profile's output budget."
    )

    agent_max_steps: Annotated[int, Field(gt=0)] = 100
    agent_max_tokens: Annotated[int, Field(gt=0)] = Field(
        5_000_000,
        description="Tokens one run may spend: uncached prompt tokens plus completion tokens.",
    )
    agent_wall_time: Annotated[float, Field(gt=0)] = 3600.0
    agent_context_window: Annotated[int, Field(gt=0)] | None = Field(
        None,
        description="A cap on the context window in tokens; unset, the window the model server "
        "says it serves (vLLM's max_model_len).",
    )
    test_timeout: Annotated[float, Field(gt=0)] = 900.0

    @field_validator("model_base_url", mode="before")
    @classmethod
    def _empty_model_url_is_the_default(cls, value: object) -> object:
        return DEFAULT_MODEL_URL if value == "" else value

    @field_validator("model_base_url", mode="after")
    @classmethod
    def _model_url(cls, value: str) -> str:
        return http_url(value)

    @field_validator("model_profile", mode="after")
    @classmethod
    def _known_profile(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        if value.strip().lower() not in MODEL_PROFILES:
            raise ValueError(f"must be one of {', '.join(MODEL_PROFILES)}")
        return value.strip().lower()

    @field_validator("model_max_tokens", "agent_context_window", mode="before")
    @classmethod
    def _empty_is_none(cls, value: object) -> object:
        return None if value == "" else value


class Settings(ModelSettings):
    """Everything the app reads from its environment. Names are the environment variables."""

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
    worker_held_jobs: Annotated[int, Field(ge=0)] = Field(
        32,
        description="Jobs a worker takes from the queue beyond its --max-jobs runs, to wait there "
        "for a model slot: only jobs that workers have taken are served in the fair order, the "
        "rest wait in the queue first in, first out.",
    )

    model_max_runs: Annotated[int, Field(ge=1)] = Field(
        8,
        description="Agent runs the model server serves at once, counted across all workers; "
        "more jobs wait for a free model slot.",
    )
    model_max_runs_per_installation: Annotated[int, Field(ge=1)] = Field(
        4,
        description="Agent runs of one GitHub App installation (organisation or account) at "
        "once, so one busy installation cannot starve the others.",
    )
    model_queue_timeout: Annotated[float, Field(gt=0)] = Field(
        3600.0,
        description="Seconds a job may wait for a model slot; then it fails, saying so.",
    )
    model_metrics_url: str | None = Field(
        None,
        description="The model server's Prometheus metrics, read to admit no new run while it is "
        "saturated; unset → MODEL_BASE_URL without /v1, plus /metrics; empty turns the check off.",
    )
    model_saturation_waiting: Annotated[float, Field(ge=0)] = Field(
        2.0,
        description="The server counts as saturated while more requests than this wait in its "
        "queue (vllm:num_requests_waiting, sglang:num_queue_reqs).",
    )
    model_saturation_kv_cache: Annotated[float, Field(gt=0, le=1)] = Field(
        0.95,
        description="The server counts as saturated while more of its KV cache than this "
        "fraction is in use (vllm:kv_cache_usage_perc, sglang:token_usage).",
    )

    public_url: str | None = Field(
        None,
        description="Where people reach the app (https://HOST), for links to run pages from "
        "GitHub and the sign-in callback; unset, comments carry no links to runs.",
    )
    run_retention_days: Annotated[float, Field(gt=0)] = Field(
        14.0, description="Days a run's page (its header and events in Redis) is kept."
    )
    admin_token: SecretStr | None = Field(
        None,
        description="A bearer token that sees every run (machines, break-glass); unset, only "
        "people signed in with GitHub see runs, each those of repositories they can read.",
    )
    github_client_id: str | None = Field(
        None, description="The App's OAuth client id, for signing in to the run viewer."
    )
    github_client_secret: SecretStr | None = Field(
        None, description="The App's OAuth client secret (`qwen-fix app create` writes both)."
    )
    ci_fix_max_attempts: Annotated[int, Field(ge=0)] = Field(
        3,
        description="Most automatic CI fixes on one pull request, whatever a repository's "
        "`ci_fix.attempts` asks; 0 turns automatic CI fixing off everywhere.",
    )
    ci_settle_seconds: Annotated[float, Field(ge=0)] = Field(
        30.0,
        description="Seconds to wait after a check suite fails before reading the commit's "
        "checks, so suites finishing together make one job.",
    )
    ci_pending_limit: Annotated[float, Field(gt=0)] = Field(
        3600.0,
        description="Seconds a check may stay queued or running before it is reported as stuck "
        "and the failed ones are fixed without it.",
    )
    ci_poll_seconds: Annotated[float, Field(gt=0)] = Field(
        60.0, description="Seconds between two looks at checks still running."
    )

    @field_validator("metrics_port", mode="before")
    @classmethod
    def _empty_port_is_none(cls, value: object) -> object:
        # The environment cannot say None; an empty METRICS_PORT= is how it turns the exporter off.
        return None if value == "" else value

    @field_validator("github_api_url", mode="after")
    @classmethod
    def _github_url(cls, value: str) -> str:
        return http_url(value)

    @field_validator("public_url", mode="after")
    @classmethod
    def _public_url(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        return http_url(value).rstrip("/")

    @field_validator("redis_url", mode="after")
    @classmethod
    def _redis_url(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        url = urlsplit(value.strip())
        if url.scheme not in ("redis", "rediss", "unix") or (
            url.scheme != "unix" and not url.hostname
        ):
            raise ValueError(
                f"{value!r} is not a Redis URL: write redis://HOST:PORT (rediss:// with TLS)"
            )
        return value.strip()

    @model_validator(mode="after")
    def _one_private_key(self) -> Settings:
        if self.private_key is None and self.private_key_path is None:
            raise ValueError("PRIVATE_KEY or PRIVATE_KEY_PATH must be set")
        path = self.private_key_path
        if self.private_key is None and path is not None and not path.is_file():
            raise ValueError(f"PRIVATE_KEY_PATH: no file at {path}")
        problem = private_key_problem(self.private_key_pem())
        if problem is not None:
            name = "PRIVATE_KEY" if self.private_key is not None else "PRIVATE_KEY_PATH"
            raise ValueError(
                f"{name} is not the app's private key ({problem}): use the whole .pem file GitHub "
                "gave you, BEGIN and END lines included (in .env, \\n for its line breaks), or "
                "set PRIVATE_KEY_PATH to the file"
            )
        return self

    @property
    def queue_url(self) -> str:
        """Redis of the job queue: REDIS_URL, or the local default `web` and `worker` use."""
        return self.redis_url or DEFAULT_REDIS_URL

    def routing_rules(self) -> Rules:
        return Rules(
            trigger_label=self.trigger_label,
            names=tuple(dict.fromkeys(n for n in (self.command_name, self.app_slug) if n)),
            branch_prefix=self.branch_prefix,
        )

    def secret_values(self) -> list[str]:
        """Every secret the settings hold, for redaction."""
        values = [self.webhook_secret.get_secret_value(), self.model_api_key.get_secret_value()]
        values += [
            secret.get_secret_value()
            for secret in (self.admin_token, self.github_client_secret)
            if secret is not None
        ]
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
