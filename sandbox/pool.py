"""A warm pool of sandboxes: containers started ahead of time, so a job's is ready at once.

Creating and starting a locked-down container costs the engine about 0.3 s and opening the shell
channel more; a pooled sandbox has done both already. Each pooled container bind-mounts an empty
host directory as its workspace, and another, read-only, for its share of the repository's
objects (mounts are fixed when a container starts, before its job's repository is known); the
worker fills both for the job that takes the slot and `Slot.ready()` hands the sandbox over. A
slot serves one job. The pool refills itself in the background.
"""

from __future__ import annotations

import asyncio
import shutil
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import docker
import structlog

from sandbox.base_commit import EMPTY_TREE
from sandbox.config import SandboxConfig
from sandbox.docker import DockerSandbox
from sandbox.labels import POOL_NAME, container_name

log = structlog.get_logger("qwen_fix.sandbox.pool")

POOL_LABEL = "qwen-fix.pool"
SLOT_PREFIX = "slot-"
"""Names of the slots' workspace directories under the pool's root."""
OBJECTS_SUFFIX = "-objects"
"""A slot's objects directory is its workspace directory's name with this added."""
IDLE_LIMIT = 600.0
"""Seconds a pooled sandbox may wait for a job; older ones are replaced, so every sandbox
handed out still has its whole lifetime ahead of it."""


@dataclass
class Slot:
    """A started sandbox over an empty workspace directory, waiting for a checkout."""

    sandbox: DockerSandbox
    workspace_dir: Path
    objects_dir: Path
    """Mounted read-only at OBJECTS_MOUNT; empty until the job's objects are shared into it."""
    created: float = field(default_factory=time.monotonic)

    async def ready(self, name: str) -> DockerSandbox:
        """Hand the sandbox over, named `name` (its job's), once the checkout is in
        `workspace_dir`."""
        await asyncio.gather(
            self.sandbox.rename(name), self.sandbox.adopt_checkout(self.workspace_dir)
        )
        return self.sandbox

    async def discard(self) -> None:
        await self.sandbox.close()
        await asyncio.to_thread(shutil.rmtree, self.workspace_dir, True)
        await asyncio.to_thread(shutil.rmtree, self.objects_dir, True)


class SandboxPool:
    """Keeps `size` idle sandboxes of one config; `take()` never waits for the engine when one is
    idle, and starts one on the spot when none is."""

    def __init__(
        self,
        client: docker.DockerClient,
        config: SandboxConfig,
        *,
        size: int,
        root: Path,
        labels: Mapping[str, str],
        idle_limit: float = IDLE_LIMIT,
    ) -> None:
        # A pooled container waits before its job starts: give it that much more life.
        self.config = config.model_copy(update={"lifetime": config.lifetime + idle_limit})
        self.client = client
        self.size = size
        self.root = root
        self.labels = {**labels, POOL_LABEL: "1"}
        self.idle_limit = idle_limit
        self._idle: list[Slot] = []
        self._filling: asyncio.Task[None] | None = None
        self._discarding: set[asyncio.Task[None]] = set()
        self._closed = False

    @property
    def idle(self) -> int:
        return len(self._idle)

    def refill(self) -> None:
        """Start topping the pool up in the background (at most one filler at a time)."""
        if self._closed or (self._filling is not None and not self._filling.done()):
            return
        self._filling = asyncio.create_task(self._fill())

    async def wait_filled(self) -> None:
        self.refill()
        if self._filling is not None:
            await self._filling

    async def take(self) -> Slot:
        """An idle slot (the pool then refills), or one started now when the pool is empty."""
        self._drop_stale()
        slot = self._idle.pop(0) if self._idle else await self._new_slot()
        self.refill()
        return slot

    async def close(self) -> None:
        self._closed = True
        if self._filling is not None:
            self._filling.cancel()
        slots, self._idle = self._idle, []
        for slot in slots:
            await slot.discard()

    async def _fill(self) -> None:
        while not self._closed and len(self._idle) < self.size:
            try:
                self._idle.append(await self._new_slot())
            except Exception:
                # An engine hiccup: jobs fall back to starting their own sandbox meanwhile.
                log.warning("pool.fill_failed", exc_info=True)
                return

    async def _new_slot(self) -> Slot:
        directory = self.root / f"{SLOT_PREFIX}{uuid.uuid4().hex[:12]}"
        # Named like the workspace, so the reaper takes it too when its worker died.
        objects = directory.with_name(directory.name + OBJECTS_SUFFIX)
        await asyncio.to_thread(directory.mkdir, parents=True)
        await asyncio.to_thread(objects.mkdir)
        try:
            sandbox = await DockerSandbox.start(
                self.client, self.config, directory, labels=self.labels,
                name=container_name(POOL_NAME), base_commit=EMPTY_TREE, objects_dir=objects,
            )  # fmt: skip
        except BaseException:
            await asyncio.to_thread(shutil.rmtree, directory, True)
            await asyncio.to_thread(shutil.rmtree, objects, True)
            raise
        return Slot(sandbox, directory, objects)

    def _drop_stale(self) -> None:
        """Let go of slots too old to serve a whole lifetime, and of those whose container is
        gone (stopped, or lost with an engine restart)."""
        now = time.monotonic()
        stale = [
            slot
            for slot in self._idle
            if now - slot.created > self.idle_limit or not slot.sandbox.shell_alive
        ]
        for slot in stale:
            self._idle.remove(slot)
            task = asyncio.create_task(slot.discard())
            self._discarding.add(task)
            task.add_done_callback(self._discarding.discard)
