"""Admission to the model server on a real Redis: limits, the fair order, leases, cancellation."""

from __future__ import annotations

import asyncio
import inspect
import random
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from redis.asyncio import Redis

from workers.admission import Admission, AdmissionLimits, Snapshot, Ticket
from workers.model_slot import ModelSlot, QueueTimedOut
from workers.tracking import Held

NOW = 1_700_000_000.0


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_url)
    yield client
    await client.aclose()


@pytest.fixture
def admission(redis: Redis) -> Callable[..., Admission]:
    """An admission queue of its own (a fresh key prefix) with the given limits."""

    def make(**limits: Any) -> Admission:
        return Admission(redis, AdmissionLimits(**limits), prefix=f"test:{uuid.uuid4().hex}:")

    return make


def ticket(
    name: str, installation: int, age: float, worker: str = "w1", places: int = 10
) -> Ticket:
    return Ticket(name, installation, worker, places, enqueued=NOW + age)


async def eventually(check: Callable[[], object], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.01)


async def test_a_hundred_runs_of_three_installations_share_the_slots_fairly(
    admission: Callable[..., Admission],
) -> None:
    queue = admission(max_runs=4, max_runs_per_installation=2, lease_ttl=30)
    sizes = {1: 70, 2: 20, 3: 10}
    # Queued in the order first-in-first-out serves worst: the big installation's backlog first.
    tickets = [
        ticket(
            f"job-{installation}-{n}",
            installation,
            age=len(sizes) * 1000 * i + n,
            worker=f"w{n % 2}",
        )
        for i, (installation, size) in enumerate(sizes.items())
        for n in range(size)
    ]
    rng = random.Random(10)
    holds = {t.job_id: rng.uniform(0.01, 0.04) for t in tickets}
    inside: Counter[int] = Counter()
    admitted: list[tuple[int, int, str]] = []

    async def run(t: Ticket) -> None:
        slot = ModelSlot(queue, t, poll=0.01)
        number = await slot.acquire()
        inside[t.installation] += 1
        assert inside.total() <= 4 and inside[t.installation] <= 2, inside
        admitted.append((number, t.installation, t.job_id))
        await asyncio.sleep(holds[t.job_id])
        inside[t.installation] -= 1
        await slot.release()

    # Hold everything until all have joined, so the order is the rule's, not the joining order.
    await queue.record_saturation(True, ttl=60)
    runs = [asyncio.create_task(run(t)) for t in tickets]
    await eventually(lambda: _all_waiting(queue, 100))
    snapshots: list[Snapshot] = []

    async def sample() -> None:
        while True:
            snapshots.append(await queue.snapshot())
            await asyncio.sleep(0.002)

    sampler = asyncio.create_task(sample())
    await queue.record_saturation(False, ttl=60)
    await asyncio.wait_for(asyncio.gather(*runs), timeout=60)
    sampler.cancel()

    order = [installation for _, installation, _ in sorted(admitted)]
    assert sorted(job for _, _, job in admitted) == sorted(t.job_id for t in tickets)
    assert len({number for number, _, _ in admitted}) == 100
    assert Counter(order) == Counter(sizes)
    running = [s for s in snapshots if not s.busy]
    assert max(s.slots.total() for s in running) == 4
    assert all(s.slots.total() <= 4 and max(s.slots.values(), default=0) <= 2 for s in running)
    # While all three wait, the slots are always split 2/1/1: nobody's share goes to another.
    contended = [s for s in running if len(+s.waiting) == 3]
    assert len(contended) >= 5
    assert all(sorted(s.slots.values()) == [1, 1, 2] for s in contended), contended[:3]
    # Round robin from the start, oldest installation first on a tie.
    assert order[:4] == [1, 2, 3, 1]
    last = {installation: len(order) - order[::-1].index(installation) for installation in sizes}
    assert last[3] <= 45, order  # first in, first out would admit them last: 91st to 100th
    assert last[2] <= 70, order
    print(
        f"\nadmission: 100 runs (70/20/10), limits 4 and 2 per installation; "
        f"{len(contended)}/{len(running)} samples with all three waiting, all split 2/1/1; "
        f"last run admitted: small #{last[3]}, middle #{last[2]}, big #{last[1]}; "
        f"first 12: {order[:12]}"
    )


async def _all_waiting(queue: Admission, count: int) -> bool:
    return (await queue.snapshot()).waiting.total() == count


async def test_the_fair_order_says_how_many_are_ahead(admission: Callable[..., Admission]) -> None:
    queue = admission(max_runs=1, max_runs_per_installation=1)
    assert (await queue.join(ticket("holder", 9, age=0))).admitted
    names = [("a1", 1), ("a2", 1), ("a3", 1), ("b1", 2), ("c1", 3)]
    for age, (name, installation) in enumerate(names, 1):
        await queue.join(ticket(name, installation, age=age))
    ahead = {name: (await queue.poll(name)).ahead for name, _ in names}
    # a, b, c take turns; then only a is left.
    assert ahead == {"a1": 0, "b1": 1, "c1": 2, "a2": 3, "a3": 4}
    await queue.release("holder")
    assert (await queue.poll("a1")).admitted
    assert (await queue.poll("b1")).ahead == 0
    await queue.release("a1")
    # b is the next installation, though a2 waited longer.
    assert (await queue.poll("b1")).admitted


async def test_a_worker_runs_no_more_jobs_than_its_places(
    admission: Callable[..., Admission],
) -> None:
    queue = admission(max_runs=4, max_runs_per_installation=4)
    assert (await queue.join(ticket("a1", 1, age=1, worker="full", places=1))).admitted
    assert not (await queue.join(ticket("a2", 1, age=2, worker="full", places=1))).admitted
    # A younger job on a worker with room goes past the one whose worker is full.
    assert (await queue.join(ticket("b1", 1, age=3, worker="free", places=1))).admitted
    # Its agent done, a1 gives its model slot back but keeps its worker's place (the tests).
    await queue.agent_done("a1")
    snapshot = await queue.snapshot()
    assert snapshot.slots == Counter({1: 1}) and snapshot.places == Counter(full=1, free=1)
    assert not (await queue.poll("a2")).admitted
    await queue.release("a1")
    assert (await queue.poll("a2")).admitted


async def test_an_agent_done_hands_its_model_slot_on(admission: Callable[..., Admission]) -> None:
    queue = admission(max_runs=1, max_runs_per_installation=1)
    assert (await queue.join(ticket("first", 1, age=1))).admitted
    assert not (await queue.join(ticket("second", 1, age=2, worker="w2"))).admitted
    await queue.agent_done("first")
    assert (await queue.poll("second")).admitted


async def test_the_lease_of_a_crashed_holder_is_reclaimed_after_its_ttl(
    admission: Callable[..., Admission],
) -> None:
    queue = admission(max_runs=1, max_runs_per_installation=1, lease_ttl=0.3)
    # A worker that crashed: one of its jobs holds the slot, one waits ahead of ours; neither
    # renews its lease again.
    assert (await queue.join(ticket("crashed-holder", 1, age=0))).admitted
    assert not (await queue.join(ticket("crashed-waiter", 2, age=1))).admitted
    started = time.monotonic()
    slot = ModelSlot(queue, ticket("alive", 3, age=2), poll=0.02)
    await asyncio.wait_for(slot.acquire(), timeout=3)
    waited = time.monotonic() - started
    assert 0.25 <= waited < 1.5, waited
    snapshot = await queue.snapshot()
    assert snapshot.waiting.total() == 0 and snapshot.slots == Counter({3: 1})
    await slot.release()


async def test_a_live_holder_keeps_its_slot_past_many_ttls(
    admission: Callable[..., Admission],
) -> None:
    queue = admission(max_runs=1, max_runs_per_installation=1, lease_ttl=0.2)
    holder = ModelSlot(queue, ticket("holder", 1, age=0), poll=0.02)
    await holder.acquire()
    waiter = asyncio.create_task(ModelSlot(queue, ticket("waiter", 2, age=1), poll=0.02).acquire())
    await asyncio.sleep(1.0)
    assert not waiter.done()
    await holder.release()
    await asyncio.wait_for(waiter, timeout=1)


async def test_cancelling_a_waiting_job_gives_up_its_place(
    admission: Callable[..., Admission],
) -> None:
    queue = admission(max_runs=1, max_runs_per_installation=1)
    assert (await queue.join(ticket("holder", 9, age=0))).admitted
    seen: list[Held | None] = []

    async def observe(held: Held | None) -> None:
        seen.append(held)

    first = asyncio.create_task(ModelSlot(queue, ticket("first", 1, age=1), poll=0.02).acquire())
    second = ModelSlot(queue, ticket("second", 2, age=2), poll=0.02)
    waiting = asyncio.create_task(second.acquire(observe))
    await eventually(lambda: Held(1) in seen)
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    assert (await queue.snapshot()).waiting == Counter({2: 1})
    await eventually(lambda: seen[-1] == Held(0))
    await queue.release("holder")
    await asyncio.wait_for(waiting, timeout=1)
    assert seen[-1] is None
    await second.release()
    assert (await queue.snapshot()).slots.total() == 0


async def test_a_job_held_past_the_queue_timeout_fails_and_leaves(
    admission: Callable[..., Admission],
) -> None:
    queue = admission(max_runs=1, max_runs_per_installation=1)
    assert (await queue.join(ticket("holder", 9, age=0))).admitted
    slot = ModelSlot(queue, ticket("late", 1, age=1), poll=0.02, queue_timeout=0.2)
    with pytest.raises(QueueTimedOut) as failure:
        await slot.acquire()
    assert "No model slot came free within 0.2 s (MODEL_QUEUE_TIMEOUT)" in str(failure.value)
    assert "every slot was taken" in str(failure.value)
    assert (await queue.snapshot()).waiting.total() == 0


async def test_a_retried_job_gives_up_the_place_of_its_earlier_attempt(
    admission: Callable[..., Admission],
) -> None:
    queue = admission(max_runs=1, max_runs_per_installation=1)
    assert (await queue.join(ticket("job", 1, age=0, worker="crashed"))).admitted
    retried = await queue.join(ticket("job", 1, age=0, worker="w2"))
    assert retried.admitted
    assert (await queue.snapshot()).places == Counter(w2=1)
