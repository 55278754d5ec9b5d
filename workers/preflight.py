"""Checks before a command starts: what it needs must answer, or it stops with one line saying
which setting is wrong and what to do, before it prints that it is ready."""

from __future__ import annotations

from bot.settings import DEFAULT_REDIS_URL


class SetupProblem(Exception):
    """Something the command needs does not answer; the message names the setting and the fix."""


DOCKER_HINT = (
    "no Docker engine answers ({error}). Start one (`systemctl start docker`, or "
    "`dockerd >/var/log/dockerd.log 2>&1 &`) or point DOCKER_HOST at one"
)


def check_docker() -> None:
    import docker

    try:
        client = docker.from_env(timeout=5)
        client.ping()
        client.close()
    except Exception as exc:
        raise SetupProblem(DOCKER_HINT.format(error=type(exc).__name__)) from None


def check_redis(url: str | None, *, role: str) -> None:
    """Redis answers at REDIS_URL (or, unset, at the local default `web` and `worker` use)."""
    import redis

    target = url or DEFAULT_REDIS_URL
    try:
        connection = redis.Redis.from_url(target, socket_connect_timeout=3, socket_timeout=3)
        connection.ping()
        connection.close()
    except redis.RedisError as exc:
        reason = str(exc).split(".")[0] or type(exc).__name__
        if url:
            fix = (
                "start redis-server there, or unset REDIS_URL and use `qwen-fix up`, which "
                "starts one"
            )
            raise SetupProblem(f"REDIS_URL={url} does not answer ({reason}): {fix}") from None
        raise SetupProblem(
            f"REDIS_URL is unset, so `qwen-fix {role}` uses {DEFAULT_REDIS_URL}, which does not "
            f"answer ({reason}): set REDIS_URL, or run `qwen-fix up`, which starts a Redis"
        ) from None
