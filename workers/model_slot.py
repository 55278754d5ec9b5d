"""A job's turn at the model server: waiting for a model slot with the tracking comment kept
true, keeping the lease alive while the run lives, and giving the slot back on every exit.

The worker binds one `ModelSlot` to each job's context (`ModelSlots.job`); the pipeline calls
`hold_model_slot` before the sandbox starts and `release_model_slot` once the agent is done.
Outside a worker job (`qwen-fix solve`, `eval`) nothing is bound and both return at once.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from contextvars import ContextVar

import structlog

from workers.admission import Admission, Place, Ticket
from workers.liveness import BEATS_TO_LIVE
from workers.saturation import SaturationProbe
from workers.tracking import Held, TrackingComment

log = structlog.get_logger("qwen_fix.model_slot")

POLL_SECONDS = 1.0
"""How often a waiting job asks where it stands (and renews its lease)."""

Observer = Callable[[Held | None], Awaitable[None]]
"""Told where a waiting job stands each time that changes, and None once it is admitted."""


class QueueTimedOut(Exception):
    """The job waited MODEL_QUEUE_TIMEOUT for a model slot; the message says so on the issue."""


async def _unobserved(held: Held | None) -> None:
    return None


class ModelSlot:
    """One job's claim on a model slot, from joining the queue until the job ends."""

    def __init__(
        self,
        admission: Admission,
        ticket: Ticket,
        *,
        probe: SaturationProbe | None = None,
        queue_timeout: float = 3600.0,
        poll: float = POLL_SECONDS,
    ) -> None:
        self._admission = admission
        self.ticket = ticket
        self._probe = probe
        self._queue_timeout = queue_timeout
        self._poll = poll
        self._agent = False
        self._joined = False
        self._keeper: asyncio.Task[None] | None = None

    async def acquire(self, observe: Observer = _unobserved) -> int:
        """Wait for the job's turn; returns the admission's number. QueueTimedOut after
        `queue_timeout`; cancelled (`/qwen-fix stop`), the job leaves the queue."""
        started = time.monotonic()
        shown: Held | None = None
        try:
            await self._refresh_saturation()
            self._joined = True
            place = await self._admission.join(self.ticket)
            while not place.admitted:
                held = Held(place.ahead, place.busy)
                if held != shown:
                    await observe(held)
                    shown = held
                if time.monotonic() - started >= self._queue_timeout:
                    raise QueueTimedOut(_timed_out(self._queue_timeout, place))
                await asyncio.sleep(self._poll)
                place = await self._next_place()
        except BaseException:
            await self.release()
            raise
        self._agent = True
        self._keeper = asyncio.create_task(self._keep())
        log.info("model_slot.admitted", number=place.number, waited=time.monotonic() - started)
        if shown is not None:
            await observe(None)
        return place.number

    async def agent_done(self) -> None:
        """The agent is done with the model: its slot goes on, the worker's place stays."""
        if not self._agent:
            return
        self._agent = False
        try:
            await self._admission.agent_done(self.ticket.job_id)
        except Exception:
            # The slot still goes back when the job ends, or when its lease lapses.
            log.warning("model_slot.agent_done_failed", exc_info=True)

    async def release(self) -> None:
        """Leave the queue, or give the slot and the place back; safe to call twice."""
        if self._keeper is not None:
            self._keeper.cancel()
            self._keeper = None
        if not self._joined:
            return
        self._joined = self._agent = False
        try:
            # Shielded: a second cancellation must not leave the slot taken until its lease lapses.
            await asyncio.shield(self._admission.release(self.ticket.job_id))
        except Exception:
            log.warning("model_slot.release_failed", exc_info=True)

    async def _next_place(self) -> Place:
        await self._refresh_saturation()
        place = await self._admission.poll(self.ticket.job_id)
        if place.lost:
            # The lease lapsed while this worker stalled: back in line, at the job's age.
            log.warning("model_slot.rejoined")
            place = await self._admission.join(self.ticket)
        return place

    async def _refresh_saturation(self) -> None:
        if self._probe is not None:
            await self._probe.refresh()

    async def _keep(self) -> None:
        every = self._admission.limits.lease_ttl / BEATS_TO_LIVE
        while True:
            await asyncio.sleep(every)
            try:
                if await self._admission.keep(self.ticket, agent=self._agent):
                    log.warning("model_slot.lease_restored")
            except Exception:
                # Redis blinked: the lease lives BEATS_TO_LIVE renewals, try again next time.
                log.warning("model_slot.keep_failed", exc_info=True)


def _timed_out(limit: float, place: Place) -> str:
    minutes = f"{limit / 60:g} min" if limit >= 60 else f"{limit:g} s"
    why = (
        "the model server reported itself saturated"
        if place.busy
        else f"every slot was taken, with {place.ahead} jobs ahead of this one"
    )
    return (
        f"No model slot came free within {minutes} (MODEL_QUEUE_TIMEOUT), so the agent did not "
        f"start: {why}."
    )


_CURRENT: ContextVar[ModelSlot | None] = ContextVar("qwen_fix_model_slot", default=None)


class ModelSlots:
    """The worker's side of admission: a `ModelSlot` for each job, bound to the job's context."""

    def __init__(
        self,
        admission: Admission,
        probe: SaturationProbe | None,
        *,
        worker_id: str,
        places: int,
        queue_timeout: float,
        poll: float = POLL_SECONDS,
    ) -> None:
        self.admission = admission
        self.probe = probe
        self._worker_id = worker_id
        self._places = places
        self._queue_timeout = queue_timeout
        self._poll = poll

    @asynccontextmanager
    async def job(
        self, job_id: str, installation: int, enqueued: float
    ) -> AsyncIterator[ModelSlot]:
        """The job's slot for the `async with` block; given back when the block ends, however."""
        ticket = Ticket(job_id, installation, self._worker_id, self._places, enqueued)
        slot = ModelSlot(
            self.admission, ticket, probe=self.probe,
            queue_timeout=self._queue_timeout, poll=self._poll,
        )  # fmt: skip
        token = _CURRENT.set(slot)
        try:
            yield slot
        finally:
            _CURRENT.reset(token)
            await slot.release()


async def hold_model_slot(tracking: TrackingComment) -> None:
    """Wait for the job's model slot, the tracking comment saying where the job stands."""
    slot = _CURRENT.get()
    if slot is None:
        return

    async def show(held: Held | None) -> None:
        if held is None:
            await tracking.update(held=None)
        else:
            await tracking.update(state="queued", held=held)

    await slot.acquire(show)


async def release_model_slot() -> None:
    """The agent is done: the model slot goes to the next job (the tests need no model)."""
    slot = _CURRENT.get()
    if slot is not None:
        await slot.agent_done()
