"""The web side's store: every Redis key of the web side, its Lua scripts and its raw Redis calls live here.

The apps keep their rules (what to count, how to match, when to refuse) and call these functions with plain
values; none of them touches Redis itself (tests/test_layering.py). The scheduler's keys live in
inference/queue.py, a job's event stream in inference/job_events.py (the worker writes it, without Django).

Keys, under the installation's prefix (EDGE_REDIS_PREFIX; each test its own). Minutes are counted on Redis'
clock where the Lua scripts read it, so every host and process agrees on them:
  cache:result:<key>         the exact prompt cache: a result as JSON, kept the cache's TTL (prompts.cache)
  cache:semantic:<group>     the semantic cache: a list of entries as JSON, newest first (prompts.semantic_cache)
  rate:<source id>:<minute>  a source's requests in a minute of the host's clock, kept 120 s (sources.rate_limit)
  refusals:minutes           sorted set of the minutes that hold refusal counts not yet stored (jobs.refusals)
  refusals:<minute>          hash: group -> refusals in that minute
  refusals:<minute>:sample   hash: group -> the first message of the group in that minute
  refusals:flushing          held (60 s at most) by the one flush that runs
  trend:<minute>             hash: the dashboard's counts of a minute (monitoring.trend)
  exits                      Celery's list of the exits queue's messages (delivery.queues)
Every name and format here is the one a running node already holds: change one and its data is lost.
"""

from __future__ import annotations

import redis
from django.conf import settings

from edgeportal.core.queueing import get_queue


def _client() -> redis.Redis:
    """The client every queue of get_queue() uses (text answers, a socket timeout)."""
    return get_queue().redis


def _prefix() -> str:
    """The installation's prefix: get_queue().base is built from the same setting."""
    return settings.EDGE_REDIS_PREFIX


# The exact prompt cache and the semantic cache (prompts.cache, prompts.semantic_cache).


def _cache_key(kind: str, key: str) -> str:
    return f"{_prefix()}:cache:{kind}:{key}"


def cache_result_get(key: str) -> str | None:
    """A cached result's JSON, or None (none, or expired)."""
    return _client().get(_cache_key("result", key))


def cache_result_set(key: str, value: str, ttl_s: int) -> None:
    _client().set(_cache_key("result", key), value, ex=ttl_s)


def cache_entries_delete() -> int:
    """Delete every cached answer, the exact cache's and the semantic cache's; returns how many keys."""
    client = _client()
    keys = [
        key for kind in ("result", "semantic")
        for key in client.scan_iter(f"{_prefix()}:cache:{kind}:*", count=1000)
    ]  # fmt: skip
    return client.delete(*keys) if keys else 0


def semantic_entries(group: str, count: int) -> list[str]:
    """The group's newest `count` entries (JSON), newest first."""
    return _client().lrange(_cache_key("semantic", group), 0, count - 1)


def semantic_entry_add(group: str, entry: str, *, keep: int, ttl_s: int) -> None:
    """Put an entry first in its group, keep the newest `keep`, and let the group live `ttl_s` past its
    newest entry: one atomic round trip."""
    key = _cache_key("semantic", group)
    with _client().pipeline() as pipe:
        pipe.lpush(key, entry)
        pipe.ltrim(key, 0, keep - 1)
        pipe.expire(key, ttl_s)
        pipe.execute()


# The per-source rate limit (sources.rate_limit).

RATE_KEEP_S = 120  # a minute's count outlives its minute, never the next one


def rate_hit(source_id: int, minute: int) -> int:
    """Count a request of the source in this minute (a number the caller chose: the window); returns the
    minute's count so far, this one included."""
    key = f"{_prefix()}:rate:{source_id}:{minute}"
    pipe = _client().pipeline()
    pipe.incr(key)
    pipe.expire(key, RATE_KEEP_S)
    count, _ = pipe.execute()
    return count


# Refusal counts per minute (jobs.refusals). A group is the caller's text: counted, never read here.

_REFUSAL_COUNT = """
local t = redis.call('TIME')
local minute = math.floor(tonumber(t[1]) / 60)
local counts = KEYS[1] .. ':' .. minute
redis.call('HINCRBY', counts, ARGV[1], 1)
redis.call('HSETNX', counts .. ':sample', ARGV[1], ARGV[2])
redis.call('EXPIRE', counts, ARGV[3])
redis.call('EXPIRE', counts .. ':sample', ARGV[3])
redis.call('ZADD', KEYS[1] .. ':minutes', minute, minute)
redis.call('ZREMRANGEBYSCORE', KEYS[1] .. ':minutes', '-inf', minute - math.floor(ARGV[3] / 60))
return minute
"""


def _refusals() -> str:
    return f"{_prefix()}:refusals"


def refusal_count_add(group: str, sample: str, keep_s: int) -> None:
    """Count one refusal of the group in Redis' current minute, keeping the minute's first sample of the
    group; the minute is kept `keep_s` if no flush stores it. One round trip."""
    _client().register_script(_REFUSAL_COUNT)(keys=[_refusals()], args=[group, sample, keep_s])


def refusal_flush_start() -> bool:
    """Take the flush's lock (60 s at most); False while another flush holds it."""
    return bool(_client().set(f"{_refusals()}:flushing", 1, nx=True, ex=60))


def refusal_flush_end() -> None:
    _client().delete(f"{_refusals()}:flushing")


def redis_now_s() -> int:
    """Redis' clock, in whole seconds: the one the counting scripts read their minute from."""
    return _client().time()[0]


def refusal_minutes(low: int | str = "-inf", high: int | str = "+inf") -> list[int]:
    """The minutes from `low` to `high` (both included) that hold counts not yet stored, oldest first."""
    return [int(minute) for minute in _client().zrangebyscore(f"{_refusals()}:minutes", low, high)]


def refusal_minute(minute: int) -> tuple[dict[str, str], dict[str, str]]:
    """A minute's counts and samples: group -> refusals, group -> first message."""
    client, base = _client(), _refusals()
    return client.hgetall(f"{base}:{minute}"), client.hgetall(f"{base}:{minute}:sample")


def refusal_minute_forget(minute: int) -> None:
    """Drop a stored minute: its counts, samples and place among the minutes, in one transaction."""
    base = _refusals()
    pipe = _client().pipeline(transaction=True)
    pipe.delete(f"{base}:{minute}", f"{base}:{minute}:sample")
    pipe.zrem(f"{base}:minutes", minute)
    pipe.execute()


def refusal_counts(minutes: list[int]) -> list[dict[str, str]]:
    """Each minute's counts (group -> refusals), in the order given: one round trip."""
    base = _refusals()
    pipe = _client().pipeline(transaction=False)
    for minute in minutes:
        pipe.hgetall(f"{base}:{minute}")
    return pipe.execute()


# The dashboard's trend per minute (monitoring.trend).

# ARGV: keep seconds, then field/increment pairs. Returns the minute counted in.
_TREND_ADD = """
local t = redis.call('TIME')
local minute = math.floor(tonumber(t[1]) / 60)
local key = KEYS[1] .. ':' .. minute
for i = 2, #ARGV, 2 do
  redis.call('HINCRBY', key, ARGV[i], ARGV[i + 1])
end
redis.call('EXPIRE', key, ARGV[1])
return minute
"""
# ARGV: keep seconds, then lane/depth pairs: the minute keeps the largest depth seen.
_TREND_DEPTH = """
local t = redis.call('TIME')
local key = KEYS[1] .. ':' .. math.floor(tonumber(t[1]) / 60)
for i = 2, #ARGV, 2 do
  local seen = tonumber(redis.call('HGET', key, 'depth:' .. ARGV[i]) or '-1')
  if tonumber(ARGV[i + 1]) > seen then redis.call('HSET', key, 'depth:' .. ARGV[i], ARGV[i + 1]) end
end
redis.call('EXPIRE', key, ARGV[1])
return 1
"""
# Returns Redis' minute, then each of the last ARGV[1] minutes' hash (oldest first) as a flat list.
_TREND_READ = """
local t = redis.call('TIME')
local now = math.floor(tonumber(t[1]) / 60)
local out = {now}
for minute = now - tonumber(ARGV[1]) + 1, now do
  table.insert(out, redis.call('HGETALL', KEYS[1] .. ':' .. minute))
end
return out
"""


def _trend() -> str:
    return f"{_prefix()}:trend"


def _pairs(values: dict[str, int]) -> list:
    return [item for pair in values.items() for item in pair]


def trend_add(counts: dict[str, int], keep_s: int) -> None:
    """Add each field's count to Redis' current minute, kept `keep_s`: one round trip."""
    _client().register_script(_TREND_ADD)(keys=[_trend()], args=[keep_s, *_pairs(counts)])


def trend_depths_keep(depths: dict[str, int], keep_s: int) -> None:
    """Keep in Redis' current minute the deepest each lane was seen (field depth:<lane>): one round trip."""
    _client().register_script(_TREND_DEPTH)(keys=[_trend()], args=[keep_s, *_pairs(depths)])


def trend_minutes(minutes: int) -> tuple[int, list[list]]:
    """Redis' current minute, and the last `minutes` minutes' hashes (oldest first, each a flat list of names
    and values as HGETALL returns it): one round trip."""
    now, *hashes = _client().register_script(_TREND_READ)(keys=[_trend()], args=[minutes])
    return int(now), hashes


# Celery's exits queue (delivery.queues): its name is also its list's key.


def exits_queue() -> str:
    """The Celery queue deliveries travel on; read when a task is sent, so a test's prefix counts."""
    return f"{_prefix()}:exits"


def exits_queue_length() -> int:
    """Messages waiting in the exits queue: Celery's Redis transport keeps them in a list named after it."""
    return _client().llen(exits_queue())
