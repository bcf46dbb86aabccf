"""The web side's keys: the prompt caches, the per-source rate limit, refusal counts, the dashboard's trend and
Celery's exits queue (their table: inference.store), with their Lua scripts.

The apps keep their rules (what to count, how to match, when to refuse) and call a WebStore with plain values.
Minutes are counted on Redis' clock where the Lua scripts read it, so every host and process agrees on them.
"""

from __future__ import annotations

import redis

RATE_KEEP_S = 120  # a minute's count outlives its minute, never the next one

# Refusal counts per minute. KEYS: the refusals' base key. ARGV: group, sample, keep seconds.
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

# The dashboard's trend per minute. ARGV: keep seconds, then field/increment pairs. Returns the minute counted in.
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


def _pairs(values: dict[str, int]) -> list:
    return [item for pair in values.items() for item in pair]


class WebStore:
    """The web side's keys under `prefix` (the installation's), through `client` (text answers)."""

    def __init__(self, client: redis.Redis, prefix: str):
        self.redis, self.prefix = client, prefix

    # The exact prompt cache and the semantic cache (prompts.cache, prompts.semantic_cache).

    def _cache_key(self, kind: str, key: str) -> str:
        return f"{self.prefix}:cache:{kind}:{key}"

    def cache_result_get(self, key: str) -> str | None:
        """A cached result's JSON, or None (none, or expired)."""
        return self.redis.get(self._cache_key("result", key))

    def cache_result_set(self, key: str, value: str, ttl_s: int) -> None:
        self.redis.set(self._cache_key("result", key), value, ex=ttl_s)

    def cache_entries_delete(self) -> int:
        """Delete every cached answer, the exact cache's and the semantic cache's; returns how many keys."""
        keys = [
            key for kind in ("result", "semantic")
            for key in self.redis.scan_iter(f"{self.prefix}:cache:{kind}:*", count=1000)
        ]  # fmt: skip
        return self.redis.delete(*keys) if keys else 0

    def semantic_entries(self, group: str, count: int) -> list[str]:
        """The group's newest `count` entries (JSON), newest first."""
        return self.redis.lrange(self._cache_key("semantic", group), 0, count - 1)

    def semantic_entry_add(self, group: str, entry: str, *, keep: int, ttl_s: int) -> None:
        """Put an entry first in its group, keep the newest `keep`, and let the group live `ttl_s` past its
        newest entry: one atomic round trip."""
        key = self._cache_key("semantic", group)
        with self.redis.pipeline() as pipe:
            pipe.lpush(key, entry)
            pipe.ltrim(key, 0, keep - 1)
            pipe.expire(key, ttl_s)
            pipe.execute()

    # The version of the rows web processes keep between requests (core.lookups): raised on every change.

    @property
    def lookups_key(self) -> str:
        return f"{self.prefix}:lookups:version"

    def lookups_version(self) -> str:
        """The version of the kept rows ("" before any change was counted)."""
        return self.redis.get(self.lookups_key) or ""

    def lookups_changed(self) -> None:
        self.redis.incr(self.lookups_key)

    # The per-source rate limit (sources.rate_limit).

    def rate_hit(self, source_id: int, minute: int) -> int:
        """Count a request of the source in this minute (a number the caller chose: the window); returns the
        minute's count so far, this one included."""
        key = f"{self.prefix}:rate:{source_id}:{minute}"
        pipe = self.redis.pipeline()
        pipe.incr(key)
        pipe.expire(key, RATE_KEEP_S)
        count, _ = pipe.execute()
        return count

    # Refusal counts per minute (jobs.refusals). A group is the caller's text: counted, never read here.

    @property
    def _refusals(self) -> str:
        return f"{self.prefix}:refusals"

    def refusal_count_add(self, group: str, sample: str, keep_s: int) -> None:
        """Count one refusal of the group in Redis' current minute, keeping the minute's first sample of the
        group; the minute is kept `keep_s` if no flush stores it. One round trip."""
        self.redis.register_script(_REFUSAL_COUNT)(keys=[self._refusals], args=[group, sample, keep_s])

    def refusal_flush_start(self) -> bool:
        """Take the flush's lock (60 s at most); False while another flush holds it."""
        return bool(self.redis.set(f"{self._refusals}:flushing", 1, nx=True, ex=60))

    def refusal_flush_end(self) -> None:
        self.redis.delete(f"{self._refusals}:flushing")

    def redis_now_s(self) -> int:
        """Redis' clock, in whole seconds: the one the counting scripts read their minute from."""
        return self.redis.time()[0]

    def refusal_minutes(self, low: int | str = "-inf", high: int | str = "+inf") -> list[int]:
        """The minutes from `low` to `high` (both included) that hold counts not yet stored, oldest first."""
        return [int(minute) for minute in self.redis.zrangebyscore(f"{self._refusals}:minutes", low, high)]

    def refusal_minute(self, minute: int) -> tuple[dict[str, str], dict[str, str]]:
        """A minute's counts and samples: group -> refusals, group -> first message."""
        base = self._refusals
        return self.redis.hgetall(f"{base}:{minute}"), self.redis.hgetall(f"{base}:{minute}:sample")

    def refusal_minute_forget(self, minute: int) -> None:
        """Drop a stored minute: its counts, samples and place among the minutes, in one transaction."""
        base = self._refusals
        pipe = self.redis.pipeline(transaction=True)
        pipe.delete(f"{base}:{minute}", f"{base}:{minute}:sample")
        pipe.zrem(f"{base}:minutes", minute)
        pipe.execute()

    def refusal_counts(self, minutes: list[int]) -> list[dict[str, str]]:
        """Each minute's counts (group -> refusals), in the order given: one round trip."""
        base = self._refusals
        pipe = self.redis.pipeline(transaction=False)
        for minute in minutes:
            pipe.hgetall(f"{base}:{minute}")
        return pipe.execute()

    # The dashboard's trend per minute (monitoring.trend).

    @property
    def _trend(self) -> str:
        return f"{self.prefix}:trend"

    def trend_add(self, counts: dict[str, int], keep_s: int) -> None:
        """Add each field's count to Redis' current minute, kept `keep_s`: one round trip."""
        self.redis.register_script(_TREND_ADD)(keys=[self._trend], args=[keep_s, *_pairs(counts)])

    def trend_depths_keep(self, depths: dict[str, int], keep_s: int) -> None:
        """Keep in Redis' current minute the deepest each lane was seen (field depth:<lane>): one round trip."""
        self.redis.register_script(_TREND_DEPTH)(keys=[self._trend], args=[keep_s, *_pairs(depths)])

    def trend_minutes(self, minutes: int) -> tuple[int, list[list]]:
        """Redis' current minute, and the last `minutes` minutes' hashes (oldest first, each a flat list of
        names and values as HGETALL returns it): one round trip."""
        now, *hashes = self.redis.register_script(_TREND_READ)(keys=[self._trend], args=[minutes])
        return int(now), hashes

    # Celery's exits queue (delivery.queues): its name is also its list's key.

    def exits_queue(self) -> str:
        """The Celery queue deliveries travel on."""
        return f"{self.prefix}:exits"

    def exits_queue_length(self) -> int:
        """Messages waiting in the exits queue: Celery's Redis transport keeps them in a list named after it."""
        return self.redis.llen(self.exits_queue())
