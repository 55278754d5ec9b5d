"""Why a job stopped, in words a person on the issue can act on, for failures that are not
the job's own: GitHub down or limiting the app, the worker's disk full, the Docker engine gone.

githubkit retries server errors and rate limits, and the shared transport retries dropped
connections (bot/github.py); what still fails after that is GitHub being down or limiting the
app. The job then says so, naming the request, instead of showing an internal error.
"""

from __future__ import annotations

import contextlib
import errno
from collections.abc import Iterator
from pathlib import Path

import docker.errors
import httpx
import requests.exceptions
from githubkit.exception import RateLimitExceeded, RequestFailed

NO_SPACE = "No space left on device"
ENGINE_UNREACHABLE = ("Connection aborted", "Error while fetching server API version")
"""What docker-py says when the engine's socket is gone (other Docker errors are the job's)."""


def describe(error: BaseException, data_dir: Path) -> str | None:
    """The reason to show for `error`, if it is one of these failures; else None."""
    return disk_full(error, data_dir) or engine_gone(error) or github_failed(error)


def disk_full(error: BaseException, data_dir: Path) -> str | None:
    """The worker's disk filled up (git, Docker and files all say it their own way)."""
    for seen in _causes(error):
        no_space = isinstance(seen, OSError) and seen.errno == errno.ENOSPC
        if no_space or NO_SPACE.casefold() in str(seen).casefold():
            return (
                f"The worker ran out of disk space ({NO_SPACE}) in DATA_DIR (`{data_dir}`). "
                "Free space there; the worker goes on taking jobs.\n\n"
                f"```\n{str(seen)[-1500:]}\n```"
            )
    return None


def engine_gone(error: BaseException) -> str | None:
    """The Docker engine stopped answering (restarted, or its socket went away) mid-job."""
    for seen in _causes(error):
        unreachable = isinstance(seen, docker.errors.DockerException) and any(
            sign in str(seen) for sign in ENGINE_UNREACHABLE
        )
        if isinstance(seen, requests.exceptions.ConnectionError) or unreachable:
            return (
                "The Docker engine stopped answering during the job, and the sandbox went with "
                f"it (`{type(seen).__name__}: {str(seen)[:300]}`). Was it restarted? The worker "
                "goes on taking jobs once the engine is back."
            )
    return None


def _causes(error: BaseException) -> Iterator[BaseException]:
    """`error` and what raised it, outermost first (a git or Docker error wraps the OS's)."""
    seen: BaseException | None = error
    while seen is not None:
        yield seen
        seen = seen.__cause__ or seen.__context__


def github_failed(error: BaseException) -> str | None:
    """What GitHub did, if `error` is GitHub failing (not refusing a request of ours)."""
    if isinstance(error, RateLimitExceeded):
        request = error.request
        wait = int(error.retry_after.total_seconds())
        return (
            f"GitHub kept rate-limiting the app ({error.response.status_code} on "
            f"{request.method} {request.url.path}, retry after {wait} s), so the job stopped."
        )
    if isinstance(error, RequestFailed) and error.response.status_code >= 500:
        request = error.request
        return (
            f"GitHub did not answer: {error.response.status_code} on {request.method} "
            f"{request.url.path}, after retries. GitHub may be having an outage."
        )
    if isinstance(error, httpx.TransportError):
        where = ""
        with contextlib.suppress(RuntimeError):  # no request attached
            where = f" for {error.request.method} {error.request.url.path}"
        return (
            f"GitHub could not be reached{where} ({type(error).__name__}), after retries. "
            "GitHub, or the network to it, may be having an outage."
        )
    return None
