"""The job queue in Redis: a stream read by a consumer group, plus the set of job ids it holds.

Why a stream and not Celery messages: the worker must own the fetch to open a window at the
first waiting job, and a consumer group keeps every delivered entry pending until it is
acknowledged, so a batch whose worker died is replayed instead of lost.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import redis

GROUP = "workers"


@dataclass
class QueuedJob:
    job_id: int
    prompt: str
    max_new_tokens: int
    system_prompt: str = ""
    entry_id: str = ""
    deliveries: int = 1
    picked_at: float = field(default=0.0)  # local time when this worker read it

    @property
    def arrived_ms(self) -> int:
        """Arrival time in Redis, taken from the stream entry id (milliseconds since the epoch)."""
        return int(self.entry_id.split("-", 1)[0])

    def to_fields(self) -> dict[str, str]:
        return {
            "job_id": str(self.job_id),
            "prompt": self.prompt,
            "system_prompt": self.system_prompt,
            "max_new_tokens": str(self.max_new_tokens),
        }

    @classmethod
    def from_entry(cls, entry_id: str, fields: dict[str, str], deliveries: int = 1) -> QueuedJob:
        return cls(
            job_id=int(fields["job_id"]),
            prompt=fields["prompt"],
            system_prompt=fields.get("system_prompt", ""),
            max_new_tokens=int(fields["max_new_tokens"]),
            entry_id=entry_id,
            deliveries=deliveries,
            picked_at=time.time(),
        )


class JobQueue:
    def __init__(self, client: redis.Redis, prefix: str = "edgeportal"):
        self.redis = client
        self.prefix = prefix
        self.stream = f"{prefix}:jobs"
        self.live = f"{prefix}:jobs:live"  # hash job_id -> enqueue time: the jobs Redis still holds
        self.dead = f"{prefix}:jobs:dead"
        self.clock_offset = 0.0  # Redis server time minus local time: windows are anchored on Redis' clock

    @classmethod
    def from_url(cls, url: str, prefix: str = "edgeportal") -> JobQueue:
        return cls(redis.Redis.from_url(url, decode_responses=True, socket_timeout=5), prefix)

    def ensure_group(self) -> None:
        try:
            self.redis.xgroup_create(self.stream, GROUP, id="0", mkstream=True)
        except redis.ResponseError as error:
            if "BUSYGROUP" not in str(error):
                raise

    def ping(self) -> None:
        self.redis.ping()

    def sync_clock(self) -> float:
        """Measure how far Redis' clock (which stamps arrivals) is from ours, so other hosts can skew freely."""
        before = time.time()
        seconds, micros = self.redis.time()
        after = time.time()
        self.clock_offset = seconds + micros / 1e6 - (before + after) / 2
        return self.clock_offset

    def now(self) -> float:
        """The current time on Redis' clock, in seconds."""
        return time.time() + self.clock_offset

    def enqueue(self, job: QueuedJob) -> str:
        self.ensure_group()
        pipe = self.redis.pipeline(transaction=True)
        pipe.xadd(self.stream, job.to_fields())
        pipe.hset(self.live, str(job.job_id), str(time.time()))
        job.entry_id = pipe.execute()[0]
        return job.entry_id

    def live_job_ids(self) -> set[int]:
        return {int(job_id) for job_id in self.redis.hkeys(self.live)}

    def _read(self, consumer: str, entry_id: str, count: int, block_ms: int | None) -> list[QueuedJob]:
        try:
            reply = self.redis.xreadgroup(GROUP, consumer, {self.stream: entry_id}, count=count, block=block_ms)
        except redis.ResponseError as error:
            if "NOGROUP" not in str(error):
                raise
            self.ensure_group()  # Redis lost its data (restart without persistence): start again
            return []
        if not reply:
            return []
        _, entries = reply[0]
        return [QueuedJob.from_entry(eid, fields) for eid, fields in entries if fields]

    def wait_new(self, consumer: str, block_ms: int) -> list[QueuedJob]:
        """Block until one new job arrives (Redis wakes a blocked reader at once on XADD)."""
        return self._read(consumer, ">", 1, block_ms)

    def read_new(self, consumer: str, count: int) -> list[QueuedJob]:
        """Non-blocking: Redis checks BLOCK timeouts only on its hz tick, too coarse inside a window."""
        return self._read(consumer, ">", count, None)

    def _with_delivery_counts(self, jobs: list[QueuedJob]) -> list[QueuedJob]:
        for job in jobs:
            info = self.redis.xpending_range(self.stream, GROUP, min=job.entry_id, max=job.entry_id, count=1)
            if info:
                job.deliveries = int(info[0]["times_delivered"])
        return jobs

    def read_own_pending(self, consumer: str, count: int) -> list[QueuedJob]:
        """Entries this consumer took before it died and never acknowledged."""
        # Reading history counts as a delivery, so a job that kills every worker reaches the poison limit.
        return self._with_delivery_counts(self._read(consumer, "0", count, None))

    def reclaim_idle(self, consumer: str, min_idle_ms: int, count: int) -> list[QueuedJob]:
        """Take over entries of workers that stopped acknowledging (gone for min_idle_ms)."""
        try:
            _, entries, deleted = self.redis.xautoclaim(self.stream, GROUP, consumer, min_idle_ms, "0-0", count=count)
        except redis.ResponseError as error:
            if "NOGROUP" not in str(error):
                raise
            return []
        if deleted:
            self.redis.xack(self.stream, GROUP, *deleted)
        jobs = [QueuedJob.from_entry(eid, fields) for eid, fields in entries if fields]
        return self._with_delivery_counts(jobs)

    def touch(self, consumer: str, jobs: list[QueuedJob]) -> None:
        """Reset the idle time of jobs in flight (JUSTID keeps their delivery count): a long batch is not reclaimed."""
        if jobs:
            self.redis.xclaim(self.stream, GROUP, consumer, 0, [job.entry_id for job in jobs], justid=True)

    def ack(self, jobs: list[QueuedJob]) -> None:
        if not jobs:
            return
        ids = [job.entry_id for job in jobs]
        pipe = self.redis.pipeline(transaction=True)
        pipe.xack(self.stream, GROUP, *ids)
        pipe.xdel(self.stream, *ids)  # XACK alone keeps the entry in the stream forever
        pipe.hdel(self.live, *[str(job.job_id) for job in jobs])
        pipe.execute()

    def bury(self, job: QueuedJob, reason: str) -> None:
        """Move a job that keeps killing workers to the dead-letter stream."""
        self.redis.xadd(self.dead, {**job.to_fields(), "reason": reason}, maxlen=10_000, approximate=True)
        self.ack([job])

    def depth(self) -> int:
        """Jobs waiting or in flight."""
        return int(self.redis.hlen(self.live))

    def lane_depths(self) -> dict[str, int]:
        """Jobs waiting or in flight, per lane."""
        return {"short": self.depth(), "long": 0}

    # --- workers' heartbeats -----------------------------------------------------------------

    @property
    def workers_key(self) -> str:
        return f"{self.prefix}:workers"  # sorted set: worker name -> last heartbeat (epoch seconds)

    def worker_key(self, name: str) -> str:
        return f"{self.prefix}:workers:{name}"

    def workers(self, *, forget_after_s: float = 3600) -> list[dict[str, str]]:
        """Every worker heard from in the last hour, newest first: its heartbeat hash plus its name.

        A worker whose hash expired (it missed its heartbeats) is listed with only name and heartbeat_at,
        so pages can show it as gone.
        """
        now = time.time()
        self.redis.zremrangebyscore(self.workers_key, "-inf", now - forget_after_s)
        names = self.redis.zrevrange(self.workers_key, 0, -1, withscores=True)
        pipe = self.redis.pipeline()
        for name, _ in names:
            pipe.hgetall(self.worker_key(name))
        found = []
        for (name, beat), fields in zip(names, pipe.execute(), strict=True):
            found.append({"heartbeat_at": str(beat), **fields, "name": name})
        return found
