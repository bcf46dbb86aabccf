"""The dashboard's fifteen-minute trend, kept in Redis per minute as things happen, so drawing it reads a few
small hashes and never the job tables, however many jobs are stored.

One hash per minute in Redis, trend:<minute>, kept KEEP_S (minutes on Redis' clock, so every process agrees on
them; the key and its scripts are the store's, inference.store):
  jobs:<status>     jobs that finished (done, failed, expired)
  cache_hits        of those, answered by the prompt cache or an identical job's run
  b:<bucket>        finished jobs per total-latency bucket (latency.buckets.BOUNDS_MS)
  refused:<rule>    requests the entry refused, by rule
  depth:<lane>      the deepest the lane's queue was seen in the minute (all pools)
Depths are sampled whenever the queue is read for people or Prometheus (the dashboard, /metrics, /readyz) and
by beat's sweep, so a minute nobody looked at and no sweep ran has no depth (a gap in the line).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime

import redis

from edgeportal.core.queueing import web_store
from edgeportal.latency.buckets import BUCKET_COUNT, bucket_of, percentile_from_buckets

log = logging.getLogger(__name__)

MINUTES = 15
KEEP_S = 20 * 60


def _add(counts: dict[str, int]) -> None:
    if counts:
        web_store().trend_add(counts, KEEP_S)


def trend_finished(latencies) -> None:
    """Count finished jobs (their JobLatency records) in the current minute: one Redis round trip."""
    counts: dict[str, int] = {}
    for latency in latencies:
        for name in (f"jobs:{latency.status}", "cache_hits" if latency.cache_hit else None):
            if name:
                counts[name] = counts.get(name, 0) + 1
        if latency.total_ms is not None:
            bucket = f"b:{bucket_of(latency.total_ms)}"
            counts[bucket] = counts.get(bucket, 0) + 1
    _add(counts)


def trend_refused(rule: str) -> None:
    _add({f"refused:{rule}": 1})


def trend_depths(depths: dict[str, int]) -> None:
    """Keep the deepest each lane's queue was seen in this minute."""
    if depths:
        web_store().trend_depths_keep(depths, KEEP_S)


def safely(record, *args) -> None:
    """The trend is for people watching: a Redis error loses a count, never a request or a batch."""
    try:
        record(*args)
    except redis.RedisError as error:
        log.warning("dashboard trend not updated: %s", error)


@dataclass
class TrendMinute:
    start: datetime
    finished: dict[str, int] = field(default_factory=dict)  # status -> jobs
    cache_hits: int = 0
    buckets: list[int] = field(default_factory=lambda: [0] * BUCKET_COUNT)
    refused: dict[str, int] = field(default_factory=dict)  # rule -> requests
    depths: dict[str, int] = field(default_factory=dict)  # lane -> deepest seen (absent: not sampled)

    @property
    def jobs(self) -> int:
        return sum(self.finished.values())

    def percentile_ms(self, percentile: int) -> float | None:
        """From the minute's latency buckets: within a bucket's width, like the hourly aggregates."""
        return percentile_from_buckets(percentile, self.buckets, maximum=None)

    @property
    def cache_hit_pct(self) -> float | None:
        return 100 * self.cache_hits / self.jobs if self.jobs else None


def parse_minute(minute: int, flat: list) -> TrendMinute:
    """One minute from its hash as HGETALL returns it (a flat list of names and values, bytes or text)."""
    entry = TrendMinute(start=datetime.fromtimestamp(minute * 60, tz=UTC))
    texts = [item.decode() if isinstance(item, bytes) else str(item) for item in flat]
    for name, value in zip(texts[::2], texts[1::2], strict=True):
        kind, _, key = name.partition(":")
        number = int(value)
        if kind == "jobs":
            entry.finished[key] = number
        elif kind == "cache_hits":
            entry.cache_hits = number
        elif kind == "b" and key.isdigit() and int(key) < BUCKET_COUNT:
            entry.buckets[int(key)] = number
        elif kind == "refused":
            entry.refused[key] = number
        elif kind == "depth":
            entry.depths[key] = number
    return entry


def trend_read(*, minutes: int = MINUTES) -> list[TrendMinute]:
    """The last `minutes` minutes, oldest first, the current (still open) minute last: one round trip."""
    now, hashes = web_store().trend_minutes(minutes)
    return [parse_minute(now - minutes + 1 + i, flat) for i, flat in enumerate(hashes)]
