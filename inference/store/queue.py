"""The scheduler's keys (their table: inference.store): a pool's job queue (one sorted set per lane ordered by
deadline, a lease set for jobs in flight), its measurements and its workers' heartbeats, under the pool's
prefix; the scheduler settings and the registry of pools, under the installation's.

Why sorted sets and Lua: earliest-deadline-first needs an order that arrival order (a stream, a list)
does not give, and a worker must move the jobs it picks out of the lane and into a lease in one atomic
step, so two workers never take the same job and a worker that dies leaves its jobs reclaimable.

All times in the queue come from Redis' clock (TIME), so hosts with skewed clocks agree. The scripts
touch job:{id} keys they build from the prefix: fine on one Redis, not on Redis Cluster.
"""

from __future__ import annotations

import dataclasses
import math
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import redis
import redis.asyncio

from inference.batch_time import updated_measurements
from inference.decoding import GREEDY, Decoding
from inference.lanes import LANES, Lane, Priority
from inference.planning import AdmissionView, ExpiredJob, LanePeek, needs_short_ranks
from inference.settings import SchedulerSettings, parse_setting

RANKS_READ = 512  # short jobs whose ranks admission reads (the rest rank later: counted first, to be safe)
HOLD_MS = 30_000  # a held place outlives its request that long at most (a database lock can hold a commit)
WORKER_ALIVE_S = 6.0  # workers beat every 2 s: silent for three beats means gone
CLOCK_SYNC_EVERY_S = 60.0

_NOW = "local t = redis.call('TIME') local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)"

# Fair share: each script that puts a job into a lane or takes one out of it counts it here, in the same
# atomic step, for the sender named in the job's 'owner' field (none: not counted).
_OWNER_FN = """
local function owner_waiting(owners, key, delta)
  local owner = redis.call('HGET', key, 'owner')
  if owner and owner ~= '' and redis.call('HINCRBY', owners, owner, delta) <= 0 then
    redis.call('HDEL', owners, owner)
  end
end
"""

# KEYS: payload, lane, deadlines, wake, stats, owners, leased, held, pools used. ARGV: id, head_start_ms,
# deadline_in_ms, the pool's name ('' for none), then field pairs (a 'place' field names the place admission held
# for it: given up here). The pool is recorded as used, so a sweep finds its jobs whatever models it knows of.
# A job already waiting or leased is left as it is: the sweep and the job's own request may both queue it (a
# request held by a table lock commits with an old created_at, which the sweep reads as lost), and a second copy
# in a lane would run it twice.
_ENQUEUE = (
    _NOW
    + _OWNER_FN
    + """
if redis.call('ZSCORE', KEYS[2], ARGV[1]) or redis.call('ZSCORE', KEYS[7], ARGV[1]) then
  local held = redis.call('HMGET', KEYS[1], 'enqueued_ms', 'deadline_ms')
  return {tonumber(held[1]) or now, tonumber(held[2]) or now}
end
local deadline = now + tonumber(ARGV[3])
redis.call('HSET', KEYS[1], 'enqueued_ms', now, 'deadline_ms', deadline, 'deliveries', 0, unpack(ARGV, 5))
if ARGV[4] ~= '' then redis.call('SADD', KEYS[9], ARGV[4]) end
local place = redis.call('HGET', KEYS[1], 'place')
if place and place ~= '' then redis.call('ZREM', KEYS[8], place) end
-- Microseconds as a fraction keep equal deadlines in arrival order (a tie would sort by job id as text).
if redis.call('ZADD', KEYS[2], deadline - tonumber(ARGV[2]) + (tonumber(t[2]) % 1000) / 1000, ARGV[1]) == 1 then
  owner_waiting(KEYS[6], KEYS[1], 1)
end
redis.call('ZADD', KEYS[3], deadline, ARGV[1])
redis.call('LPUSH', KEYS[4], 1)
redis.call('LTRIM', KEYS[4], 0, 63)
local last = tonumber(redis.call('HGET', KEYS[5], 'last_arrival_ms'))
if last then
  local gap = math.min(now - last, 60000)
  local avg = tonumber(redis.call('HGET', KEYS[5], 'arrival_gap_ms')) or gap
  redis.call('HSET', KEYS[5], 'arrival_gap_ms', tostring(avg + (gap - avg) * 0.2))
end
redis.call('HSET', KEYS[5], 'last_arrival_ms', now)
return {now, deadline}
"""
)

# Expire in one place: the job leaves its lane and the deadline index, and its payload is returned.
_EXPIRE_FN = (
    _OWNER_FN
    + """
local function expire(prefix, lane_prefix, deadlines, id, out, owners, est)
  local key = prefix .. id
  local fields = redis.call('HGETALL', key)
  local lane = redis.call('HGET', key, 'lane') or 'short'
  if redis.call('ZREM', lane_prefix .. lane, id) == 1 then owner_waiting(owners, key, -1) end
  redis.call('ZREM', deadlines, id)
  redis.call('DEL', key)
  table.insert(out, {id, fields, tostring(est or 0)})
end
-- A batch's time by its size (1, 2, ...; the last: a full batch and any larger one), from "ms,ms,...".
local function by_size(list)
  local found = {}
  for ms in string.gmatch(list, '[^,]+') do table.insert(found, tonumber(ms)) end
  return found
end
local function sized(found, jobs)
  return found[math.max(1, math.min(jobs, #found))] or 0
end
"""
)

# KEYS: lane, deadlines, leased, owners, busy. ARGV: job key prefix, lane key prefix, max_count, max_tokens,
# est_ms by batch size, lease_ms, worker. Takes jobs in rank order into a lease, up to the count and the
# padded token budget (the batch's rows, one per candidate of each job, times the longest prompt). Expiry as
# planning.expires rules, in rank order: a job that cannot finish by its deadline even if run now, in a batch
# of as many jobs as still wait (up to max_count; batch_ms_of_size), is expired instead of taken (not one whose
# output is kept: it only needs storing).
_TAKE = (
    _NOW
    + _EXPIRE_FN
    + """
local max_count, max_tokens = tonumber(ARGV[3]), tonumber(ARGV[4])
local sizes, waiting = by_size(ARGV[5]), redis.call('ZCARD', KEYS[1])
local lease_ms = tonumber(ARGV[6])
local taken, expired = {}, {}
local longest, rows = 0, 0  -- rows: a job of n candidates is n rows of the batch (inference.candidates)
local ids = redis.call('ZRANGE', KEYS[1], 0, max_count * 4 + 16)
for _, id in ipairs(ids) do
  local key = ARGV[1] .. id
  local deadline = tonumber(redis.call('HGET', key, 'deadline_ms'))
  local est = sized(sizes, math.min(waiting - #expired, max_count))
  if not deadline then
    redis.call('ZREM', KEYS[1], id)
    redis.call('ZREM', KEYS[2], id)
  elseif deadline < now + est and redis.call('HEXISTS', key, 'kept') == 0 then
    expire(ARGV[1], ARGV[2], KEYS[2], id, expired, KEYS[4], est)
  else
    if #taken >= max_count then break end
    local counts = redis.call('HMGET', key, 'prompt_tokens', 'rows')
    local tokens, job_rows = tonumber(counts[1]) or 0, tonumber(counts[2]) or 1
    local padded = math.max(longest, tokens) * (rows + job_rows)
    if #taken > 0 and padded > max_tokens then break end
    longest = math.max(longest, tokens)
    rows = rows + job_rows
    redis.call('ZREM', KEYS[1], id)
    owner_waiting(KEYS[4], key, -1)
    redis.call('ZREM', KEYS[2], id)
    redis.call('ZADD', KEYS[3], now + lease_ms, id)
    redis.call('HINCRBY', key, 'deliveries', 1)
    redis.call('HSET', key, 'worker', ARGV[7], 'leased_ms', now)
    table.insert(taken, {id, redis.call('HGETALL', key)})
  end
end
if #taken > 0 then  -- the worker is busy from this moment (it refines when with set_busy)
  redis.call('HSET', KEYS[5], ARGV[7], string.format('%.3f', (now + sized(sizes, #taken)) / 1000))
end
return {taken, expired, now}
"""
)

# KEYS: deadlines, owners. ARGV: job key prefix, lane key prefix, then est_ms by batch size per lane as
# name/value pairs. The expiry timer: every waiting job of these lanes that can no longer finish by its
# deadline, even if its lane's next batch started now with as many jobs as still wait in it
# (planning.expires with batch_ms_of_size).
_EXPIRE_DUE = (
    _NOW
    + _EXPIRE_FN
    + """
local est, longest = {}, 0
for i = 3, #ARGV, 2 do
  est[ARGV[i]] = by_size(ARGV[i + 1])
  longest = math.max(longest, sized(est[ARGV[i]], 1000000))
end
local expired = {}
for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now + longest, 'LIMIT', 0, 1000)) do
  local key = ARGV[1] .. id
  local deadline = tonumber(redis.call('HGET', key, 'deadline_ms'))
  local lane = redis.call('HGET', key, 'lane') or 'short'
  local lane_est = est[lane] and sized(est[lane], redis.call('ZCARD', ARGV[2] .. lane))
  if not deadline then
    redis.call('ZREM', KEYS[1], id)
  -- only the lanes named; never a job whose output is kept (it needs storing, not running)
  elseif lane_est and deadline < now + lane_est and redis.call('HEXISTS', key, 'kept') == 0 then
    expire(ARGV[1], ARGV[2], KEYS[1], id, expired, KEYS[2], lane_est)
  end
end
return expired
"""
)

# KEYS: leased, deadlines, owners, workers. ARGV: job key prefix, lane key prefix, worker ('' for none),
# limit, alive_s. Put back in their lanes the leased jobs whose lease ran out, or whose worker's heartbeat
# is older than alive_s (it died: no need to wait out the lease), or (at a worker's start) that it held.
_RECLAIM = (
    _NOW
    + _OWNER_FN
    + """
local back = redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES')
local silent_before = now / 1000 - tonumber(ARGV[5])
local count = 0
for i = 1, #back, 2 do
  local id, lease_end = back[i], tonumber(back[i + 1])
  local key = ARGV[1] .. id
  local holder = redis.call('HGET', key, 'worker')
  local beat = holder and tonumber(redis.call('ZSCORE', KEYS[4], holder))
  if lease_end < now or (ARGV[3] ~= '' and holder == ARGV[3]) or (beat and beat < silent_before) then
    redis.call('ZREM', KEYS[1], id)
    local deadline = tonumber(redis.call('HGET', key, 'deadline_ms'))
    if deadline then
      local lane = redis.call('HGET', key, 'lane') or 'short'
      local rank = deadline - tonumber(redis.call('HGET', key, 'head_start_ms') or 0)
      if redis.call('ZADD', ARGV[2] .. lane, rank, id) == 1 then owner_waiting(KEYS[3], key, 1) end  -- fair share
      redis.call('ZADD', KEYS[2], deadline, id)
      count = count + 1
      if count >= tonumber(ARGV[4]) then break end
    end
  end
end
return count
"""
)

# KEYS: leased, deadlines, owners. ARGV: job key prefix, lane key prefix, then job ids. A finished job leaves
# Redis everywhere at once: its lease, and its lane if it was reclaimed meanwhile (a worker thought dead),
# so no lane keeps an id whose payload is gone, and fair share's count follows.
_ACK = (
    _OWNER_FN
    + """
for i = 3, #ARGV do
  local id = ARGV[i]
  local key = ARGV[1] .. id
  redis.call('ZREM', KEYS[1], id)
  local lane = redis.call('HGET', key, 'lane')
  if lane and redis.call('ZREM', ARGV[2] .. lane, id) == 1 then owner_waiting(KEYS[3], key, -1) end
  redis.call('ZREM', KEYS[2], id)
  redis.call('DEL', key)
end
"""
)

# KEYS: held. ARGV: token, rank, hold_ms. Admission holds a place of this rank in the job's lane before it reads
# the queue, so of two concurrent requests the later reader counts the other (places that outlived hold_ms,
# their request gone without queueing a job, are dropped here).
_HOLD = (
    _NOW
    + """
for _, member in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  if tonumber(string.match(member, '^(%d+):')) < now then redis.call('ZREM', KEYS[1], member) end
end
local member = (now + tonumber(ARGV[3])) .. ':' .. ARGV[1]
redis.call('ZADD', KEYS[1], tonumber(ARGV[2]), member)
return member
"""
)

# KEYS: job keys. ARGV: their kept values. Only jobs still held (a job acknowledged meanwhile is gone).
_KEEP = """
for i, key in ipairs(KEYS) do
  if redis.call('EXISTS', key) == 1 then redis.call('HSET', key, 'kept', ARGV[i]) end
end
"""

# KEYS: deadlines, owners. ARGV: job key prefix, lane key prefix, then job ids. Single flight: takes the jobs that
# still wait in a lane out of the queue, so an identical job's result can answer them; a job a worker
# has leased is left alone (it runs, and its result is stored only if it is still unfinished).
_WITHDRAW = (
    _OWNER_FN
    + """
local withdrawn = {}
for i = 3, #ARGV do
  local id = ARGV[i]
  local key = ARGV[1] .. id
  local lane = redis.call('HGET', key, 'lane')
  if lane and redis.call('ZREM', ARGV[2] .. lane, id) == 1 then
    owner_waiting(KEYS[2], key, -1)
    redis.call('ZREM', KEYS[1], id)
    redis.call('DEL', key)
    table.insert(withdrawn, id)
  end
end
return withdrawn
"""
)

# KEYS: owners, then the lanes. ARGV: job key prefix. Fair share counted afresh from the jobs waiting, so
# a count that drifted (a job's payload lost, a script that forgot to count) heals at the next sweep.
_RECOUNT = """
local counts = {}
for i = 2, #KEYS do
  for _, id in ipairs(redis.call('ZRANGE', KEYS[i], 0, -1)) do
    local owner = redis.call('HGET', ARGV[1] .. id, 'owner')
    if owner and owner ~= '' then counts[owner] = (counts[owner] or 0) + 1 end
  end
end
redis.call('DEL', KEYS[1])
local senders = 0
for owner, count in pairs(counts) do
  redis.call('HSET', KEYS[1], owner, count)
  senders = senders + 1
end
return senders
"""

# KEYS: workers, busy, long-runs, then each lane's workers. ARGV: seconds without a heartbeat after which a
# worker is dead. Drops what dead workers left behind: their lane-workers members and their busy and
# long-runs fields (the workers set itself keeps them an hour, for the dashboard's "gone").
_FORGET_DEAD = """
local cutoff = tonumber(redis.call('TIME')[1]) - tonumber(ARGV[1])
local dropped = 0
for i = 4, #KEYS do
  dropped = dropped + redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', '(' .. cutoff)
end
for i = 2, 3 do
  for _, name in ipairs(redis.call('HKEYS', KEYS[i])) do
    local beat = tonumber(redis.call('ZSCORE', KEYS[1], name))
    if not beat or beat < cutoff then dropped = dropped + redis.call('HDEL', KEYS[i], name) end
  end
end
return dropped
"""

# KEYS: lane. ARGV: job key prefix, max_count. What a window needs to know without taking anything:
# how many wait, the head's arrival and deadline, and the padded tokens of the first max_count.
_PEEK = (
    _NOW
    + """
local held = 0  -- places held by requests being admitted (members: 'expires_ms:token')
for _, member in ipairs(redis.call('ZRANGE', KEYS[2], 0, -1)) do
  if tonumber(string.match(member, '^(%d+):')) >= now then held = held + 1 end
end
local ids = redis.call('ZRANGE', KEYS[1], 0, tonumber(ARGV[2]) - 1)
if #ids == 0 then return {0, 0, 0, 0, now, held} end
local head = ARGV[1] .. ids[1]
local longest, rows = 0, 0
for _, id in ipairs(ids) do
  local counts = redis.call('HMGET', ARGV[1] .. id, 'prompt_tokens', 'rows')
  longest = math.max(longest, tonumber(counts[1]) or 0)
  rows = rows + (tonumber(counts[2]) or 1)
end
return {redis.call('ZCARD', KEYS[1]), tonumber(redis.call('HGET', head, 'enqueued_ms')) or now,
        tonumber(redis.call('HGET', head, 'deadline_ms')) or now, longest * rows, now, held}
"""
)


@dataclass
class QueuedJob:
    job_id: int
    prompt: str
    max_new_tokens: int
    system_prompt: str = ""
    prompt_tokens: int = 0
    lane: str = Lane.SHORT
    priority: str = Priority.NORMAL
    head_start_ms: int = 0  # how far its priority moves it ahead of its deadline order
    deadline_ms: int = 0  # epoch ms on Redis' clock, set at enqueue
    enqueued_ms: int = 0  # arrival, epoch ms on Redis' clock, set at enqueue
    deliveries: int = 1
    cache_key: str = ""  # identical prompts share it: a batch runs them once (see inference.single_flight)
    owner: str = ""  # its sender, whose waiting jobs fair share counts ("" for none)
    picked_at: float = field(default=0.0)  # local time it entered a worker's window (see collect_window)
    kept: str = ""  # its output from an earlier run, not stored yet (inference.kept_results)
    place: str = ""  # the place admission held for it until it is queued (JobQueue.hold_place)
    decoding: Decoding = GREEDY  # sampling, stop strings, raw prompt, streaming (inference.decoding)

    @property
    def rows(self) -> int:
        """The rows it takes in its batch: one per candidate (inference.candidates)."""
        return self.decoding.candidates

    def to_fields(self) -> dict[str, str]:
        return {
            "job_id": str(self.job_id),
            "prompt": self.prompt,
            "system_prompt": self.system_prompt,
            "max_new_tokens": str(self.max_new_tokens),
            "prompt_tokens": str(self.prompt_tokens),
            "lane": self.lane,
            "priority": self.priority,
            "head_start_ms": str(self.head_start_ms),
            "place": self.place,
            "cache_key": self.cache_key,
            "owner": self.owner,
            "decoding": self.decoding.to_json(),
            "rows": str(self.rows),  # what the take script counts in the token budget
        }

    @classmethod
    def from_fields(cls, fields: dict[str, str]) -> QueuedJob:
        return cls(
            job_id=int(fields["job_id"]),
            prompt=fields["prompt"],
            system_prompt=fields.get("system_prompt", ""),
            max_new_tokens=int(fields["max_new_tokens"]),
            prompt_tokens=int(fields.get("prompt_tokens", 0)),
            lane=fields.get("lane", Lane.SHORT),
            priority=fields.get("priority", Priority.NORMAL),
            head_start_ms=int(fields.get("head_start_ms", 0)),
            deadline_ms=int(float(fields.get("deadline_ms", 0))),
            enqueued_ms=int(float(fields.get("enqueued_ms", 0))),
            deliveries=int(fields.get("deliveries", 1)),
            cache_key=fields.get("cache_key", ""),
            owner=fields.get("owner", ""),
            picked_at=time.time(),
            kept=fields.get("kept", ""),
            decoding=Decoding.from_json(fields.get("decoding", "")),
        )


def lane_peek(found: list) -> LanePeek:
    return LanePeek(*(int(value) for value in found))


def long_run_fields(value: str) -> tuple[float, float]:
    """A value of the long-runs hash (see JobQueue.set_long_run): finish by (Redis clock, s), model ms left."""
    finish_by, left_ms = value.split(",")
    return float(finish_by), float(left_ms)


def stats_read(stats: dict[str, str], now: float) -> dict[str, float]:
    """The stats hash as numbers, with the Redis time it was read at (now_s): estimates decay with age."""
    return {**{name: float(value) for name, value in stats.items()}, "now_s": now}


BySize = float | Sequence[float]  # a batch's time by its size (1, 2, …), or one for every size


def _by_size(estimate_ms: BySize) -> str:
    sizes = [estimate_ms] if isinstance(estimate_ms, int | float) else list(estimate_ms) or [0]
    return ",".join(str(int(ms)) for ms in sizes)


def _by_sha(pipe: redis.client.Pipeline, script: redis.commands.core.Script, *, keys: list, args: list) -> None:
    """Queue a script call by its SHA alone. Handed the script itself, a pipeline first asks Redis whether it
    holds it (SCRIPT EXISTS), a round trip of its own at every execute; the caller loads it only when Redis
    answers NOSCRIPT."""
    pipe.evalsha(script.sha, len(keys), *keys, *args)


def _pairs(flat: list) -> dict[str, str]:
    return dict(zip(flat[::2], flat[1::2], strict=True))


def redis_client(url: str) -> redis.Redis:
    """A client as every queue uses one: text answers, and a socket timeout, so an outage fails a call."""
    return redis.Redis.from_url(url, decode_responses=True, socket_timeout=5)


def async_redis_client(url: str) -> redis.asyncio.Redis:
    """The same for an event loop, whose reads block up to 10 s on a job's events (inference.store.job_events):
    its socket timeout outlasts them."""
    return redis.asyncio.Redis.from_url(url, decode_responses=True, socket_timeout=30)


class JobQueue:
    """One pool's queue (inference.pools) under `prefix`; `base` is the installation's prefix, under which
    the keys all pools share live (the scheduler settings, the registry of pools)."""

    def __init__(self, client: redis.Redis, prefix: str = "edgeportal", *, base: str | None = None, pool: str = ""):
        self.redis = client
        self.prefix = prefix
        self.base = prefix if base is None else base
        self.pool = pool  # the pool's name, where known (a worker's queue; the web's queues by pool)
        self.pools_key = f"{self.base}:pools"  # hash: pool name -> last heartbeat of a worker serving it
        self.pools_used_key = f"{self.base}:pools:used"  # set: every pool a job was queued in
        self.deadlines = f"{prefix}:deadlines"
        self.leased = f"{prefix}:leased"
        self.wake = f"{prefix}:wake"
        self.stats = f"{prefix}:stats"
        self.dead = f"{prefix}:jobs:dead"
        self.job_prefix = f"{prefix}:job:"
        self.lane_prefix = f"{prefix}:lane:"
        self.owners = f"{prefix}:waiting-by-owner"
        self.clock_offset = 0.0  # Redis server time minus local time
        self._synced_at = -math.inf
        self._enqueue = client.register_script(_ENQUEUE)
        self._take = client.register_script(_TAKE)
        self._expire_due = client.register_script(_EXPIRE_DUE)
        self._reclaim = client.register_script(_RECLAIM)
        self._keep = client.register_script(_KEEP)
        self._ack = client.register_script(_ACK)
        self._hold = client.register_script(_HOLD)
        self._peek = client.register_script(_PEEK)
        self._withdraw = client.register_script(_WITHDRAW)
        self._recount = client.register_script(_RECOUNT)
        self._forget_dead = client.register_script(_FORGET_DEAD)

    @classmethod
    def from_url(cls, url: str, prefix: str = "edgeportal", *, base: str | None = None, pool: str = "") -> JobQueue:
        return cls(redis_client(url), prefix, base=base, pool=pool)

    def pools_seen(self) -> dict[str, float]:
        """Every pool a worker has served, with its last heartbeat (Redis clock, s)."""
        return {name: float(seen) for name, seen in self.redis.hgetall(self.pools_key).items()}

    def pools_used(self) -> set[str]:
        """Every pool a job was queued in, and every pool a worker has served."""
        pipe = self.redis.pipeline(transaction=False)
        pipe.smembers(self.pools_used_key)
        pipe.hkeys(self.pools_key)
        used, seen = pipe.execute()
        return set(used) | set(seen)

    def lane_key(self, lane: str) -> str:
        return f"{self.lane_prefix}{lane}"

    def held_key(self, lane: str) -> str:
        return f"{self.prefix}:held:{lane}"

    def hold_place_in(self, pipe: redis.client.Pipeline, lane: str, *, token: str, rank: float, hold_ms: int) -> None:
        """Hold a place of this rank in the lane (its answer, in the pipeline, is the place: see _HOLD). Queued
        by the script's SHA: see _by_sha."""
        _by_sha(pipe, self._hold, keys=[self.held_key(lane)], args=[token, rank, hold_ms])

    def admission_view(
        self, lane: str, *, now: float, rank: float, prior: Mapping[str, str] | None = None, hold: bool = False
    ) -> AdmissionView:
        """Everything admission decides on for a job of this lane and rank, read in one round trip at `now`
        (Redis clock, s): the lanes' depths, the jobs ahead, measurements (over `prior`, the model's, before a
        worker measured any), the live workers of each lane, who is busy, the long batches in progress and
        the long lane's head.

        With `hold`, the job's place in its lane is held first, in the same round trip (view.place: the
        caller releases it if it refuses the job; queueing the job gives it up). What others hold counts as
        waiting, and as ahead whatever its rank: of two requests whose reads cross, the later reader must
        count the other (their ranks come from clocks read before either held a place)."""
        token = uuid.uuid4().hex
        try:
            answers = self._admission_reads(lane, now=now, rank=rank, hold=hold, token=token)
        except redis.exceptions.NoScriptError:  # Redis lost its scripts (a restart, SCRIPT FLUSH): none of them ran
            for script in (self._hold, self._peek):
                self.redis.script_load(script.script)
            answers = self._admission_reads(lane, now=now, rank=rank, hold=hold, token=token)
        place = answers.pop(0) if hold else None
        queued_and_held, answers = answers[: 2 * len(LANES)], answers[2 * len(LANES) :]
        ahead, stats, answers = answers[0], answers[1], answers[2:]
        serving = dict(zip(LANES, answers[: len(LANES)], strict=True))
        busy, long_runs, long_head = answers[len(LANES) :]
        # This request's own place is itself, not a job ahead of it.
        held = {name: int(n) - (hold and name == lane) for name, n in zip(LANES, queued_and_held[1::2], strict=True)}
        depths = {name: int(queued) + held[name] for name, queued in zip(LANES, queued_and_held[::2], strict=True)}
        view = AdmissionView(
            now=now,
            depths=depths,
            ahead=int(ahead) + held[lane],
            measurements=stats_read({**(prior or {}), **stats}, now),
            serving=serving,
            busy={name: float(until) for name, until in busy.items()},
            long_runs={name: long_run_fields(run) for name, run in long_runs.items()},
            long_head=lane_peek(long_head),
            place=place,
        )
        if needs_short_ranks(view, lane):
            view = dataclasses.replace(view, short_ranks=self._short_ranks(place, depths[Lane.SHORT]))
        return view

    def _admission_reads(self, lane: str, *, now: float, rank: float, hold: bool, token: str) -> list:
        """admission_view's round trip: its answers in the order it reads them."""
        pipe = self.redis.pipeline(transaction=False)
        if hold:
            self.hold_place_in(pipe, lane, token=token, rank=rank, hold_ms=HOLD_MS)
        for name in LANES:
            pipe.zcard(self.lane_key(name))
            pipe.zcard(self.held_key(name))
        pipe.zcount(self.lane_key(lane), "-inf", rank)
        pipe.hgetall(self.stats)
        for name in LANES:
            pipe.zrangebyscore(self.lane_workers_key(name), now - WORKER_ALIVE_S, "+inf")
        pipe.hgetall(self.busy_key)
        pipe.hgetall(self.long_runs_key)
        self.peek_in(pipe, Lane.LONG, 1)
        return pipe.execute()

    def _short_ranks(self, place: str | None, waiting: int) -> list[float]:
        """The ranks of the short jobs waiting (a second round trip, only where the planner needs them).
        Places other requests hold, and jobs beyond RANKS_READ, count as ranked first."""
        pipe = self.redis.pipeline(transaction=False)
        pipe.zrange(self.lane_key(Lane.SHORT), 0, RANKS_READ - 1, withscores=True)
        pipe.zrange(self.held_key(Lane.SHORT), 0, RANKS_READ - 1)
        ranks, held = pipe.execute()
        others_held = sum(1 for member in held if member != place)
        unread = waiting - len(ranks) - others_held
        return [-math.inf] * (others_held + max(0, unread)) + [score for _, score in ranks]

    def release_place(self, lane: str, place: str) -> None:
        """Give up a held place whose job will not be queued (admission refused it)."""
        self.redis.zrem(self.held_key(lane), place)

    def ping(self) -> None:
        self.redis.ping()

    def sync_clock(self) -> float:
        """Measure how far Redis' clock (which stamps arrivals, deadlines and heartbeats) is from ours."""
        before = time.time()
        seconds, micros = self.redis.time()
        after = time.time()
        self.clock_offset = seconds + micros / 1e6 - (before + after) / 2
        self._synced_at = time.monotonic()
        return self.clock_offset

    def now(self) -> float:
        """The current time on Redis' clock, in seconds: measured again every CLOCK_SYNC_EVERY_S, so a web or
        beat process on another host than the workers compares like with like."""
        if time.monotonic() - self._synced_at > CLOCK_SYNC_EVERY_S:
            try:
                self.sync_clock()
            except redis.RedisError:
                pass  # the last offset stands; the caller's own Redis call says Redis is down
        return time.time() + self.clock_offset

    # --- entry side --------------------------------------------------------------------------

    def enqueue(self, job: QueuedJob, *, deadline_in_ms: int) -> QueuedJob:
        """Queue a job that must finish within deadline_in_ms from now (Redis' now: no clock skew); a job
        Redis already holds (waiting or leased) stays as it is, once."""
        if job.lane not in LANES:
            raise ValueError(f"unknown lane {job.lane!r}")
        fields = [item for pair in job.to_fields().items() for item in pair]
        keys = [
            self.job_prefix + str(job.job_id), self.lane_key(job.lane), self.deadlines, self.wake, self.stats,
            self.owners, self.leased, self.held_key(job.lane), self.pools_used_key,
        ]  # fmt: skip
        job.enqueued_ms, job.deadline_ms = self._enqueue(
            keys=keys, args=[job.job_id, job.head_start_ms, max(0, int(deadline_in_ms)), self.pool, *fields]
        )
        return job

    def lane_depths(self) -> dict[str, int]:
        """Jobs waiting (not in flight) per lane."""
        pipe = self.redis.pipeline(transaction=False)
        for lane in LANES:
            pipe.zcard(self.lane_key(lane))
        return dict(zip(LANES, (int(n) for n in pipe.execute()), strict=True))

    def waiting_of(self, owner: str) -> int:
        """Jobs this sender has waiting in the lanes (not in flight): what its share of the queue holds."""
        return int(self.redis.hget(self.owners, owner) or 0) if owner else 0

    def recount_owners(self) -> int:
        """Count every sender's waiting jobs afresh (atomically); returns how many senders have some."""
        return int(self._recount(keys=[self.owners, *(self.lane_key(lane) for lane in LANES)], args=[self.job_prefix]))

    def live_job_ids(self) -> set[int]:
        """Every job Redis holds: waiting in a lane or leased to a worker."""
        pipe = self.redis.pipeline(transaction=False)
        for key in [*(self.lane_key(lane) for lane in LANES), self.leased]:
            pipe.zrange(key, 0, -1)
        return {int(job_id) for members in pipe.execute() for job_id in members}

    def depth(self) -> int:
        """Jobs waiting or in flight."""
        return sum(self.lane_depths().values()) + int(self.redis.zcard(self.leased))

    # --- worker side -------------------------------------------------------------------------

    def wait_for_work(self, timeout_s: float, lanes: tuple[str, ...] = LANES) -> None:
        """Block until a job is enqueued or the timeout passes, unless one of these lanes has work."""
        depths = self.lane_depths()
        if not any(depths[lane] for lane in lanes):
            self.redis.blpop([self.wake], timeout=timeout_s)

    def peek(self, lane: str, max_count: int) -> LanePeek:
        return lane_peek(self._peek(keys=[self.lane_key(lane), self.held_key(lane)], args=[self.job_prefix, max_count]))

    def peek_in(self, pipe: redis.client.Pipeline, lane: str, max_count: int) -> None:
        """The same peek, queued in a pipeline by the script's SHA (see _by_sha): its answer reads with lane_peek."""
        _by_sha(pipe, self._peek, keys=[self.lane_key(lane), self.held_key(lane)], args=[self.job_prefix, max_count])

    def take(
        self, lane: str, *, worker: str, max_count: int, max_tokens: int, est_ms: BySize, lease_ms: int
    ) -> tuple[list[QueuedJob], list[ExpiredJob]]:
        """Atomically lease the next jobs of a lane, and expire those that would miss their deadline."""
        taken, expired, _ = self._take(
            keys=[self.lane_key(lane), self.deadlines, self.leased, self.owners, self.busy_key],
            args=[self.job_prefix, self.lane_prefix, max_count, max_tokens, _by_size(est_ms), lease_ms, worker],
        )
        return [QueuedJob.from_fields(_pairs(fields)) for _, fields in taken], self._expired(expired)

    def expire_due(self, est_ms: Mapping[str, BySize]) -> list[ExpiredJob]:
        """The expiry timer's step: remove every job waiting in the lanes of est_ms that can no longer meet
        its deadline (est_ms: a batch's planned time per lane, by its size (scheduler.batch_central_by_size)
        or one for all sizes; 0 expires only jobs past their deadline)."""
        args = [self.job_prefix, self.lane_prefix]
        for lane, estimate_ms in est_ms.items():
            args += [lane, _by_size(estimate_ms)]
        return self._expired(self._expire_due(keys=[self.deadlines, self.owners], args=args))

    @staticmethod
    def _expired(rows: list) -> list[ExpiredJob]:
        found = []
        for job_id, flat, estimate_ms in rows:
            fields = _pairs(flat)
            lane, deadline_ms = fields.get("lane", Lane.SHORT), int(float(fields.get("deadline_ms", 0)))
            found.append(ExpiredJob(int(job_id), lane, deadline_ms, float(estimate_ms)))
        return found

    def reclaim(self, *, worker: str = "", limit: int = 1000) -> int:
        """Put back the jobs of workers that died (heartbeat silent for WORKER_ALIVE_S, or lease run out);
        with worker, also that worker's own."""
        keys = [self.leased, self.deadlines, self.owners, self.workers_key]
        return int(self._reclaim(keys=keys, args=[self.job_prefix, self.lane_prefix, worker, limit, WORKER_ALIVE_S]))

    def keep_results(self, kept: dict[int, str]) -> None:
        """Keep finished outputs with their jobs until ack (see inference.kept_results)."""
        if kept:
            self._keep(keys=[self.job_prefix + str(job_id) for job_id in kept], args=list(kept.values()))

    def withdraw(self, job_ids: list[int]) -> list[int]:
        """Take these jobs out of their lanes, atomically, if they still wait there; returns those it took.
        A job leased by a worker, or that Redis does not hold, is not among them."""
        if not job_ids:
            return []
        found = self._withdraw(keys=[self.deadlines, self.owners], args=[self.job_prefix, self.lane_prefix, *job_ids])
        return [int(job_id) for job_id in found]

    def touch(self, jobs: list[QueuedJob], lease_ms: int) -> None:
        """Extend the lease of jobs in flight: a long batch is not mistaken for a dead worker."""
        if jobs:
            until = int(self.now() * 1000) + lease_ms
            self.redis.zadd(self.leased, {str(job.job_id): until for job in jobs}, xx=True)

    def ack(self, jobs: list[QueuedJob]) -> None:
        """Forget finished jobs (see _ACK)."""
        if jobs:
            keys = [self.leased, self.deadlines, self.owners]
            self._ack(keys=keys, args=[self.job_prefix, self.lane_prefix, *(job.job_id for job in jobs)])

    def bury(self, job: QueuedJob, reason: str) -> None:
        """Move a job that keeps killing workers to the dead-letter stream."""
        self.redis.xadd(self.dead, {**job.to_fields(), "reason": reason}, maxlen=10_000, approximate=True)
        self.ack([job])

    # --- measurements ------------------------------------------------------------------------

    def record_batch_time(
        self,
        lane: str,
        inference_ms: float,
        *,
        tokens: int | None = None,
        jobs: int = 1,
        steps: int | None = None,
        step_ms: float | None = None,
    ) -> None:
        """Add a batch to its lane's measurements (see inference.batch_time): admission, expiry and the
        pace of long batches plan with them. Read and written in one optimistic transaction (WATCH), so
        two workers finishing at once both count."""

        now = self.now()

        def update(pipe: redis.client.Pipeline) -> None:
            stats = pipe.hgetall(self.stats)
            pipe.multi()
            fields = updated_measurements(
                stats, lane, inference_ms, tokens=tokens, jobs=jobs, now=now, steps=steps, step_ms=step_ms
            )
            pipe.hset(self.stats, mapping=fields)

        self.redis.transaction(update, self.stats)

    # --- what each worker is running, until when -------------------------------------------

    @property
    def busy_key(self) -> str:
        return f"{self.prefix}:busy"  # hash: worker name -> when its current batch should end (Redis clock, s)

    def set_busy(self, worker: str, ms_from_now: float) -> None:
        self.redis.hset(self.busy_key, worker, f"{self.now() + ms_from_now / 1000:.3f}")

    def clear_busy(self, worker: str) -> None:
        self.redis.hdel(self.busy_key, worker)

    def claim_probe(self, lane: str, ms: float) -> bool:
        """Admission's probe of an idle lane (inference.admission): one at a time, for as long as it takes to
        start; the requests that arrive meanwhile are planned behind it."""
        return bool(self.redis.set(f"{self.prefix}:probe:{lane}", 1, nx=True, px=max(1, int(ms))))

    @property
    def long_runs_key(self) -> str:
        return f"{self.prefix}:long-runs"  # hash: worker name -> "finish by (Redis clock, s),model ms left"

    def set_long_run(self, worker: str, finish_by: float, left_ms: float) -> None:
        """A long batch that stands aside for short ones: by when it must finish, and its work left."""
        self.redis.hset(self.long_runs_key, worker, f"{finish_by:.3f},{left_ms:.0f}")

    def clear_long_run(self, worker: str) -> None:
        self.redis.hdel(self.long_runs_key, worker)

    def measurements(self) -> dict[str, float]:
        """The stats (see inference.batch_time: batch times, lines, baselines; arrival_gap_ms and
        last_arrival_ms once known), and now_s, when they were read (Redis clock, s)."""
        return stats_read(self.redis.hgetall(self.stats), self.now())

    def publish_baseline(self, fields: dict[str, str], *, replace: bool) -> None:
        """The baseline a worker measured at start (inference.batch_time): replace what is there, or fill it
        in where it is missing (Redis lost it)."""
        if replace:
            self.redis.hset(self.stats, mapping=fields)
            return
        pipe = self.redis.pipeline(transaction=False)
        for name, value in fields.items():
            pipe.hsetnx(self.stats, name, value)
        pipe.execute()

    # --- workers' heartbeats -----------------------------------------------------------------

    @property
    def workers_key(self) -> str:
        return f"{self.prefix}:workers"  # sorted set: worker name -> last heartbeat (epoch seconds)

    def lane_workers_key(self, lane: str) -> str:
        return f"{self.prefix}:lane-workers:{lane}"  # sorted set: the workers serving this lane -> last heartbeat

    def worker_key(self, name: str) -> str:
        return f"{self.prefix}:workers:{name}"

    def beat(self, name: str, *, lanes: Sequence[str], status: Mapping[str, object], ttl_s: float) -> None:
        """A worker's heartbeat, in one round trip: it is alive (on Redis' clock: the reclaim script judges
        silence by it), serves these lanes of this pool, and says what it runs (its hash, gone after ttl_s)."""
        now = self.now()
        pipe = self.redis.pipeline()
        pipe.zadd(self.workers_key, {name: now})
        if self.pool:
            pipe.hset(self.pools_key, self.pool, now)
        for lane in lanes:
            pipe.zadd(self.lane_workers_key(lane), {name: now})
        pipe.hset(self.worker_key(name), mapping={**status, "pool": self.pool, "heartbeat_at": now})
        pipe.expire(self.worker_key(name), int(ttl_s))
        pipe.execute()

    def settings_applied(self, name: str, version: int, *, at: float) -> None:
        """When a worker first applied a settings version (the tuning page shows it)."""
        applied = {"settings_version": version, "settings_applied_version": version, "settings_applied_at": at}
        self.redis.hset(self.worker_key(name), mapping=applied)

    def forget_dead_workers(self, *, dead_after_s: float = 60) -> int:
        """Drop, atomically, the lane-workers members and busy and long-runs fields of workers without a
        heartbeat for dead_after_s (Redis' clock against their heartbeat stamps: keep clocks in sync).
        Returns how many entries went."""
        keys = [self.workers_key, self.busy_key, self.long_runs_key, *(self.lane_workers_key(lane) for lane in LANES)]
        return int(self._forget_dead(keys=keys, args=[dead_after_s]))

    def lanes_without_workers(self, *, alive_s: float) -> list[str]:
        """The lanes that no worker with a heartbeat in the last alive_s seconds serves."""
        pipe = self.redis.pipeline(transaction=False)
        for lane in LANES:
            pipe.zcount(self.lane_workers_key(lane), self.now() - alive_s, "+inf")
        return [lane for lane, live in zip(LANES, pipe.execute(), strict=True) if not live]

    def workers(self, *, forget_after_s: float = 3600) -> list[dict[str, str]]:
        """Every worker heard from in the last hour, newest first: its heartbeat hash plus its name.

        A worker whose hash expired (it missed its heartbeats) is listed with only name and heartbeat_at,
        so pages can show it as gone.
        """
        now = self.now()  # heartbeats are stamped on Redis' clock
        self.redis.zremrangebyscore(self.workers_key, "-inf", now - forget_after_s)
        names = self.redis.zrevrange(self.workers_key, 0, -1, withscores=True)
        pipe = self.redis.pipeline()
        for name, _ in names:
            pipe.hgetall(self.worker_key(name))
        found = []
        for (name, beat), fields in zip(names, pipe.execute(), strict=True):
            found.append({"heartbeat_at": str(beat), **fields, "name": name})
        return found


# --- scheduler settings, shared by every pool ------------------------------------------------


class SettingsStore:
    """Scheduler settings: environment defaults, overridden by a Redis hash that applies from the next window.

    The hash also holds _version, raised on every save, so workers can say which settings they applied.
    """

    def __init__(self, queue: JobQueue, defaults: SchedulerSettings):
        self.redis = queue.redis
        self.key = f"{queue.base}:scheduler"  # one set of settings for every pool
        self.pools_key = queue.pools_key
        self.defaults = defaults

    def current(self) -> SchedulerSettings:
        return self.defaults.overridden(self.redis.hgetall(self.key))

    def current_and_pools(self, also: str) -> tuple[SchedulerSettings, dict[str, float], str | None]:
        """The settings, JobQueue.pools_seen() and the string at key `also` in one round trip: a submission needs
        them all (`also`: the version of the rows the web keeps, WebStore.lookups_key)."""
        pipe = self.redis.pipeline(transaction=False)
        pipe.hgetall(self.key)
        pipe.hgetall(self.pools_key)
        pipe.get(also)
        stored, pools, value = pipe.execute()
        return self.defaults.overridden(stored), {name: float(seen) for name, seen in pools.items()}, value

    def current_with_version(self) -> tuple[SchedulerSettings, int]:
        stored = self.redis.hgetall(self.key)
        return self.defaults.overridden(stored), int(stored.get("_version", 0))

    def update(self, **values: object) -> int:
        """Store overrides (checked first, all or nothing); returns the new version."""
        checked = {name: parse_setting(name, raw) for name, raw in values.items()}
        pipe = self.redis.pipeline(transaction=True)
        if checked:
            pipe.hset(self.key, mapping=checked)
        pipe.hincrby(self.key, "_version", 1)
        return int(pipe.execute()[-1])

    def publish(self, overrides: Mapping[str, object], version: int) -> bool:
        """Put a full set of overrides with its version (the database's), in one atomic step, unless Redis
        holds that version or a newer one: a save published late never undoes a newer one. True if written."""
        checked = {name: parse_setting(name, raw) for name, raw in overrides.items()}
        flat = [item for pair in checked.items() for item in pair]
        return bool(self.redis.eval(_PUBLISH, 1, self.key, version, *flat))


# KEYS: the settings hash. ARGV: version, then name/value pairs.
_PUBLISH = """
if tonumber(redis.call('HGET', KEYS[1], '_version') or '0') >= tonumber(ARGV[1]) then return 0 end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], '_version', ARGV[1], unpack(ARGV, 2))
return 1
"""
