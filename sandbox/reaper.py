"""Reaping: sandbox containers that no running job owns any more, and the host directories
that crashed workers left behind for them."""

from __future__ import annotations

import shutil
import time
from collections.abc import Collection
from pathlib import Path

import docker

from sandbox import labels as label
from sandbox.docker import remove_container

STARTING_GRACE = 120.0
"""Seconds a container may sit in `created` before it counts as abandoned: another worker
may be between creating and starting it."""
ENDED_STATES = frozenset({"exited", "dead"})


def reap_orphans(
    client: docker.DockerClient,
    *,
    worker_id: str | None = None,
    live_workers: Collection[str] | None = None,
    dead_workers: Collection[str] = (),
) -> int:
    """Remove orphaned sandbox containers and return how many were removed.

    With `worker_id`, every sandbox of that worker goes (call it when the worker starts:
    whatever it left behind is from a previous life). Always, sandboxes past their lifetime,
    ended, or created but never started go, and so do those whose worker label names a worker not in
    `live_workers` when that is given, or one in `dead_workers`. Blocking: from async code use
    asyncio.to_thread.
    """
    now = time.time()
    containers = client.api.containers(all=True, filters={"label": f"{label.SANDBOX}=1"})
    removed = 0
    for container in containers:
        if is_orphan(
            container, now=now, worker_id=worker_id, live_workers=live_workers,
            dead_workers=dead_workers,
        ):  # fmt: skip
            remove_container(client, container["Id"])
            removed += 1
    return removed


def is_orphan(
    container: dict[str, object],
    *,
    now: float,
    worker_id: str | None,
    live_workers: Collection[str] | None,
    dead_workers: Collection[str] = (),
) -> bool:
    """Decide from a container listing entry whether it should be removed."""
    labels = container.get("Labels") or {}
    assert isinstance(labels, dict)
    owner = labels.get(label.WORKER)
    if worker_id is not None and owner == worker_id:
        return True
    if owner is not None and owner in dead_workers:
        return True
    state = container.get("State")
    if state in ENDED_STATES:
        return True
    created = container.get("Created")
    if state == "created" and isinstance(created, int) and created < now - STARTING_GRACE:
        return True
    expires_at = labels.get(label.EXPIRES_AT)
    if expires_at is not None and float(expires_at) <= now:
        return True
    return live_workers is not None and owner is not None and owner not in live_workers


def reap_directories(
    client: docker.DockerClient, root: Path, pattern: str, *, grace: float = STARTING_GRACE
) -> int:
    """Remove the directories under `root` named like `pattern` (a glob) that no sandbox
    container mounts and that nothing has touched for `grace` seconds; return how many.

    These are a sandbox's run directory or a pooled sandbox's workspace: each goes with its
    sandbox, unless the worker died first. The grace spares one being made right now, before
    its container exists. Blocking: from async code use asyncio.to_thread.
    """
    if not root.is_dir():
        return 0
    containers = client.api.containers(all=True, filters={"label": f"{label.SANDBOX}=1"})
    mounted = {
        mount.get("Source") for container in containers for mount in container.get("Mounts") or ()
    }
    now = time.time()
    removed = 0
    for path in root.glob(pattern):
        try:
            if {str(path), str(path.resolve())} & mounted or not path.is_dir():
                continue
            if path.stat().st_mtime > now - grace:
                continue
        except FileNotFoundError:
            continue
        shutil.rmtree(path, ignore_errors=True)
        removed += 1
    return removed
