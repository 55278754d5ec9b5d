"""Docker labels and names that mark qwen-fix sandbox containers, so they can be found and reaped.

Labels are fixed when a container is created, but a pooled sandbox is created before anyone
knows its job: so the job is in the container's name, which a pooled sandbox gets when a job
takes it (`docker rename`).
"""

from __future__ import annotations

import hashlib
import re
import secrets

SANDBOX = "qwen-fix.sandbox"
"""Present (value "1") on every sandbox container."""
WORKER = "qwen-fix.worker"
"""Id of the worker process that started the sandbox."""
EXPIRES_AT = "qwen-fix.expires-at"
"""Unix time after which the sandbox has outlived its lifetime."""
NAME_PREFIX = "qwen-fix-"
MAX_ID_LENGTH = 100
POOL_NAME = "pool"
"""Stands for the job in the names of pooled sandboxes that no job has taken yet."""


def container_name(job_id: str) -> str:
    """`qwen-fix-<job id>-<6 hex>`: the job, made fit for a container name, and a random
    tail, since a job may start more than one sandbox over its life."""
    return f"{NAME_PREFIX}{_safe(job_id)}-{secrets.token_hex(3)}"


def job_name_filter(job_id: str) -> str:
    """A `name` filter for the engine's container listing: the sandboxes of this job only."""
    return f"^/{re.escape(NAME_PREFIX + _safe(job_id))}-[0-9a-f]{{6}}$"


def _safe(job_id: str) -> str:
    safe = re.sub(r"[^a-zA-Z0-9_.-]+", "-", job_id).strip("-.") or "job"
    if len(safe) > MAX_ID_LENGTH:
        # Long ids keep their beginning for people, and a digest of the whole for the filter.
        digest = hashlib.sha256(job_id.encode()).hexdigest()[:12]
        safe = f"{safe[: MAX_ID_LENGTH - 13]}-{digest}"
    return safe
