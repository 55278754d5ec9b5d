"""Fair admission of agent runs to the model server: model slots, held as leases in Redis.

GPUs are the expensive part, so a job holds a *model slot* from just before its sandbox starts
until its agent is done (workers/model_slot.py is the job's side of it). Every worker on every
host shares the counts below, kept in Redis and changed only by the Lua scripts of this module,
so there is no check-then-act race between workers.

The limits
- MODEL_MAX_RUNS model slots in all, MODEL_MAX_RUNS_PER_INSTALLATION per GitHub App
  installation (one organisation or account), so one busy installation cannot starve the others.
- A worker runs at most `--max-jobs` jobs past admission at once: its *places*. A job keeps its
  place after the agent, through the tests, until the job ends, so a worker never has more
  sandboxes than `--max-jobs`; the model slot goes back as soon as the agent is done.
- While the model server reports itself saturated (workers/saturation.py writes the reading
  here), no job is admitted. Jobs already admitted are never held: they keep their slot.

The fair rule (who gets a slot that comes free)
1. Only installations under their per-installation limit that have a waiting job whose worker
   has a free place take part.
2. Among them, the installation holding the fewest model slots gets it; among equals, the one
   whose last admission is longest ago (never admitted counts as longest ago): round robin;
   among equals still, the one with the oldest waiting job.
3. Within the installation, its oldest job (by arq enqueue time) whose worker has a free place.
Slots are handed over in the same script that frees them (a release, a lapsed lease, a
saturation that cleared), so no slot stays idle while an eligible job waits, and the order of
admission is decided in one place, whichever worker's job polls first. "N ahead" is the job's
position if the rule went on admitting with no run ending: an estimate, since runs end in any
order.

Leases (the worker liveness idea of workers/liveness.py)
Waiting and admitted jobs are leases of `lease_ttl` seconds: WORKER_HEARTBEAT ×
BEATS_TO_LIVE, 60 s by default. Waiting jobs renew theirs on every poll (each second), admitted
ones every heartbeat; a crashed worker's jobs stop renewing, and the next script of any worker
purges them after the TTL, giving their slots to the next jobs in the fair order.

arq and this queue
A job waits for its slot inside its arq job, so it takes one of arq's `max_jobs` of its worker
while it waits. If `max_jobs` were `--max-jobs`, a worker full of one installation's waiting jobs
could not even pick up another installation's job, and arq's FIFO would decide after all. So a
worker takes `--max-jobs` + WORKER_HELD_JOBS jobs from arq (arq's `max_jobs`), and this module
enforces `--max-jobs` as the worker's places. A waiting job costs a coroutine, a mirror fetch and
an empty job directory (the sandbox's checkout is made when its sandbox starts), so the extra
capacity is cheap. Fairness holds among the jobs the workers have taken: only when more jobs are
queued than all workers together take (Σ `max_jobs`) do the rest wait in arq's queue, first in,
first out, until a worker takes them. arq's job timeout is the run's own time limit plus
MODEL_QUEUE_TIMEOUT, the most a job waits here before it fails saying so. Since arq 0.26
(python-arq/arq#408) its poll loop never blocks on a full worker, so `/qwen-fix stop` reaches a
waiting job within a poll (half a second), however many jobs are queued behind it.

Each caller passes its own limits to the scripts: run every worker with the same MODEL_*
settings. The scripts read Redis's clock (so hosts' clocks need not agree) and use ZADD GT:
Redis ≥ 6.2.

Keys, under PREFIX: `waiting` (zset job → enqueue time, ms), `running` (zset job → admission
number: jobs holding a place), `agents` (set: the jobs of `running` still holding a model slot),
`expiry` (zset job → lease deadline, ms, for waiting and running jobs alike), `jobs` (hash job →
"installation TAB worker TAB worker's places"), `turns` (hash installation → its last admission
number), `seq` (admission counter), `saturation` (hash, `busy` = 1 or 0, expiring).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis
from redis.commands.core import AsyncScript

PREFIX = "qwen-fix:admission:"
KEYS = ("waiting", "expiry", "running", "agents", "jobs", "turns", "seq", "saturation")

_COMMON = """
local waiting, expiry, running, agents, jobs, turns, seq, saturation =
  KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8]
local max_runs, per_installation, ttl = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local job = ARGV[4]
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)

local function facts(record)
  local installation, worker, places = string.match(record, '^(.-)\\t(.-)\\t(%d+)$')
  return installation, worker, tonumber(places)
end

local function forget(name)
  redis.call('ZREM', waiting, name)
  redis.call('ZREM', expiry, name)
  redis.call('ZREM', running, name)
  redis.call('SREM', agents, name)
  redis.call('HDEL', jobs, name)
end

local function busy()
  return redis.call('HGET', saturation, 'busy') == '1'
end

local function records(names)
  local found = {}
  for first = 1, #names, 500 do
    local chunk = redis.call('HMGET', jobs, unpack(names, first, math.min(first + 499, #names)))
    for _, record in ipairs(chunk) do table.insert(found, record) end
  end
  return found
end

-- Everything the fair rule reads, once: model slots per installation, places per worker, and
-- the waiting jobs grouped by installation, each group oldest first, groups in the order of
-- their oldest job.
local function load()
  local state = {slots = {}, places = {}, total = 0, groups = {}, order = {}, turn = {}}
  local holding = redis.call('SMEMBERS', agents)
  for _, record in ipairs(records(holding)) do
    if record then
      local installation = facts(record)
      state.slots[installation] = (state.slots[installation] or 0) + 1
      state.total = state.total + 1
    end
  end
  for _, record in ipairs(records(redis.call('ZRANGE', running, 0, -1))) do
    if record then
      local _, worker = facts(record)
      state.places[worker] = (state.places[worker] or 0) + 1
    end
  end
  local queue = redis.call('ZRANGE', waiting, 0, -1)
  for index, record in ipairs(records(queue)) do
    if record then
      local installation, worker, places = facts(record)
      local group = state.groups[installation]
      if not group then
        group = {}
        state.groups[installation] = group
        table.insert(state.order, installation)
        state.turn[installation] = tonumber(redis.call('HGET', turns, installation) or '0')
      end
      table.insert(group, {job = queue[index], worker = worker, places = places})
    end
  end
  return state
end

local function before(state, slots, a, b)
  if b == nil then return true end
  local sa, sb = slots[a] or 0, slots[b] or 0
  return sa < sb or (sa == sb and state.turn[a] < state.turn[b])
end

-- The installation whose turn it is, and its job to admit; nil when nobody may start.
local function next_turn(state)
  local best, chosen = nil, nil
  for _, installation in ipairs(state.order) do
    if (state.slots[installation] or 0) < per_installation then
      for _, entry in ipairs(state.groups[installation]) do
        if not entry.admitted and (state.places[entry.worker] or 0) < entry.places then
          if before(state, state.slots, installation, best) then
            best, chosen = installation, entry
          end
          break
        end
      end
    end
  end
  return best, chosen
end

-- Purge lapsed leases, then hand free slots to waiting jobs in the fair order.
local function settle()
  for _, name in ipairs(redis.call('ZRANGEBYSCORE', expiry, '-inf', now)) do forget(name) end
  local state = load()
  if busy() then return state end
  while state.total < max_runs do
    local installation, entry = next_turn(state)
    if installation == nil then break end
    local number = redis.call('INCR', seq)
    redis.call('ZREM', waiting, entry.job)
    redis.call('ZADD', running, number, entry.job)
    redis.call('SADD', agents, entry.job)
    redis.call('HSET', turns, installation, number)
    entry.admitted = true
    state.slots[installation] = (state.slots[installation] or 0) + 1
    state.places[entry.worker] = (state.places[entry.worker] or 0) + 1
    state.total = state.total + 1
    state.turn[installation] = number
  end
  return state
end

-- How many waiting jobs the rule would admit before `name` if no run ended from now on.
local function ahead(state, name)
  local slots, next, count = {}, {}, 0
  local turn = tonumber(redis.call('GET', seq) or '0')
  for _, installation in ipairs(state.order) do
    slots[installation] = state.slots[installation] or 0
    next[installation] = 1
  end
  local simulated = {turn = {}}
  for installation, value in pairs(state.turn) do simulated.turn[installation] = value end
  while true do
    local best = nil
    for _, installation in ipairs(state.order) do
      local group = state.groups[installation]
      while next[installation] <= #group and group[next[installation]].admitted do
        next[installation] = next[installation] + 1
      end
      if next[installation] <= #group and before(simulated, slots, installation, best) then
        best = installation
      end
    end
    if best == nil or state.groups[best][next[best]].job == name then return count end
    count, turn = count + 1, turn + 1
    slots[best] = slots[best] + 1
    simulated.turn[best] = turn
    next[best] = next[best] + 1
  end
end

-- {admitted (1, 0, or -1 when the job is not here), ahead, busy, admission number}
local function place(state, name)
  local number = redis.call('ZSCORE', running, name)
  if number then return {1, 0, 0, tonumber(number)} end
  if not redis.call('ZSCORE', waiting, name) then return {-1, 0, 0, 0} end
  return {0, ahead(state, name), busy() and 1 or 0, 0}
end
"""

_JOIN = """
-- A job of an earlier attempt (the same arq job, retried) gives its place up first.
forget(job)
redis.call('HSET', jobs, job, ARGV[5])
redis.call('ZADD', waiting, ARGV[6], job)
redis.call('ZADD', expiry, now + ttl, job)
return place(settle(), job)
"""

_POLL = """
redis.call('ZADD', expiry, 'XX', 'GT', now + ttl, job)
return place(settle(), job)
"""

_KEEP = """
if redis.call('ZSCORE', running, job) then
  redis.call('ZADD', expiry, now + ttl, job)
  return 0
end
-- The lease lapsed (a stalled worker, a Redis failover) but the run is alive: it is never held,
-- so it takes its slot back, over the limit until the next slot comes free if need be.
forget(job)
redis.call('HSET', jobs, job, ARGV[5])
redis.call('ZADD', running, redis.call('INCR', seq), job)
if ARGV[6] == '1' then redis.call('SADD', agents, job) end
redis.call('ZADD', expiry, now + ttl, job)
return 1
"""

_AGENT_DONE = """
redis.call('SREM', agents, job)
settle()
return 0
"""

_RELEASE = """
forget(job)
settle()
return 0
"""

_SATURATION = """
redis.call('HSET', saturation, 'busy', ARGV[5])
redis.call('PEXPIRE', saturation, ARGV[6])
-- Admissions held back while the server was saturated happen now, not at the next poll.
settle()
return 0
"""


@dataclass(frozen=True, slots=True)
class AdmissionLimits:
    """How many agent runs the model server serves at once, and how long a lease lives."""

    max_runs: int = 8
    """Model slots in all (MODEL_MAX_RUNS)."""
    max_runs_per_installation: int = 4
    """Model slots of one installation (MODEL_MAX_RUNS_PER_INSTALLATION)."""
    lease_ttl: float = 60.0
    """Seconds a waiting or admitted job's lease lives without renewal."""


@dataclass(frozen=True, slots=True)
class Ticket:
    """A job asking for a model slot."""

    job_id: str
    installation: int
    worker: str
    places: int
    """The worker's `--max-jobs`: how many of its jobs may be past admission at once."""
    enqueued: float
    """Unix seconds the job was queued: the oldest waiting job of an installation goes first."""

    def record(self) -> str:
        return f"{self.installation}\t{self.worker}\t{self.places}"


@dataclass(frozen=True, slots=True)
class Place:
    """Where a job stands."""

    admitted: bool
    ahead: int = 0
    """Waiting jobs the fair rule admits before this one if no run ended meanwhile."""
    busy: bool = False
    """The model server said it is saturated: nobody is admitted until it has room."""
    number: int = 0
    """The admission's number (admissions are numbered in the order they happen)."""
    lost: bool = False
    """The job is not in the queue (its lease lapsed): it has to join again."""


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The whole queue at one instant, for status pages and tests."""

    waiting: Counter[int]
    """Installation → its waiting jobs."""
    slots: Counter[int]
    """Installation → its model slots."""
    places: Counter[str]
    """Worker → its jobs past admission."""
    busy: bool


class Admission:
    """The shared queue of model slots; every operation is one atomic Lua script."""

    def __init__(self, redis: Redis, limits: AdmissionLimits, *, prefix: str = PREFIX) -> None:
        self._redis = redis
        self.limits = limits
        self._keys = [prefix + name for name in KEYS]
        self._join = redis.register_script(_COMMON + _JOIN)
        self._poll = redis.register_script(_COMMON + _POLL)
        self._keep = redis.register_script(_COMMON + _KEEP)
        self._agent_done = redis.register_script(_COMMON + _AGENT_DONE)
        self._release = redis.register_script(_COMMON + _RELEASE)
        self._saturation = redis.register_script(_COMMON + _SATURATION)

    async def join(self, ticket: Ticket) -> Place:
        """Queue the job (admitting it at once when it is its turn and a slot is free)."""
        return _place(await self._run(self._join, ticket.job_id, ticket.record(),
                                      int(ticket.enqueued * 1000)))  # fmt: skip

    async def poll(self, job_id: str) -> Place:
        """Renew a waiting job's lease and say where it stands now."""
        return _place(await self._run(self._poll, job_id))

    async def keep(self, ticket: Ticket, *, agent: bool) -> bool:
        """Renew an admitted job's lease; True when it had lapsed and was taken back."""
        return bool(await self._run(self._keep, ticket.job_id, ticket.record(), int(agent)))

    async def agent_done(self, job_id: str) -> None:
        """The job's agent is done: its model slot goes to the next job, its place stays."""
        await self._run(self._agent_done, job_id)

    async def release(self, job_id: str) -> None:
        """The job leaves the queue, or gives back its slot and place (idempotent)."""
        await self._run(self._release, job_id)

    async def record_saturation(self, busy: bool, ttl: float) -> None:
        """The model server's latest reading, for `ttl` seconds; then it counts as not busy."""
        await self._run(self._saturation, "", int(busy), max(int(ttl * 1000), 1))

    async def snapshot(self) -> Snapshot:
        waiting, _, running, agents, jobs, _, _, saturation = self._keys
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.zrange(waiting, 0, -1)
            pipe.smembers(agents)
            pipe.zrange(running, 0, -1)
            pipe.hgetall(jobs)
            pipe.hget(saturation, "busy")
            queued, holding, admitted, records, busy = await pipe.execute()
        facts = {_text(job): _text(record).split("\t") for job, record in records.items()}
        return Snapshot(
            waiting=Counter(int(facts[_text(j)][0]) for j in queued if _text(j) in facts),
            slots=Counter(int(facts[_text(j)][0]) for j in holding if _text(j) in facts),
            places=Counter(facts[_text(j)][1] for j in admitted if _text(j) in facts),
            busy=busy is not None and _text(busy) == "1",
        )

    async def _run(self, script: AsyncScript, *args: str | int) -> Any:
        limits = self.limits
        return await script(
            keys=self._keys,
            args=[limits.max_runs, limits.max_runs_per_installation,
                  int(limits.lease_ttl * 1000), *args],
        )  # fmt: skip


def _place(reply: list[int]) -> Place:
    admitted, ahead, busy, number = (int(value) for value in reply)
    if admitted < 0:
        return Place(admitted=False, lost=True)
    return Place(admitted=admitted == 1, ahead=ahead, busy=busy == 1, number=number)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
