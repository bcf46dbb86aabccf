"""Admission control: estimate a new job's wait from the queue and measured batch times, before accepting it."""

from __future__ import annotations

import math
from dataclasses import dataclass

from inference.queue import LANES, JobQueue
from inference.scheduler import SchedulerSettings, batch_estimate_ms

WORKER_ALIVE_S = 6.0  # three missed heartbeats


@dataclass(frozen=True)
class Estimate:
    waiting: int  # jobs waiting in all lanes
    ahead: int  # jobs the new one would wait behind in its lane (by rank: priority and deadline)
    workers: int  # live workers serving the job's lane
    finish_ms: float | None  # None until a batch time has been measured in this lane
    retry_after_s: int


def admission_estimate(
    queue: JobQueue, settings: SchedulerSettings, *, lane: str, priority: str, deadline_ms: int
) -> Estimate:
    """One Redis round trip. The estimate: the batches ahead of the job (its own included, and one more
    while a batch is running) shared among the live workers, plus one window; a batch counts as its
    likely upper bound (see batch_estimate_ms)."""
    now_ms = queue.now() * 1000
    rank = now_ms + deadline_ms - settings.head_start_ms(priority)
    pipe = queue.redis.pipeline(transaction=False)
    for name in LANES:
        pipe.zcard(queue.lane_key(name))
    pipe.zcount(queue.lane_key(lane), "-inf", rank)
    pipe.hgetall(queue.stats)
    pipe.zcount(queue.lane_workers_key(lane), now_ms / 1000 - WORKER_ALIVE_S, "+inf")  # those serving its lane
    pipe.zcard(queue.leased)
    *depths, ahead, stats, workers, in_flight = pipe.execute()
    measurements = {name: float(value) for name, value in stats.items()}
    batch_ms = batch_estimate_ms(measurements, lane)
    workers = max(1, int(workers))
    finish_ms = None
    retry_after_s = max(1, math.ceil(batch_ms / 1000))  # one batch drains the head of the queue
    if batch_ms:
        batches = math.ceil((int(ahead) + 1) / settings.max_batch_size) + (1 if int(in_flight) else 0)
        finish_ms = batches * batch_ms / workers + settings.window_ms
        retry_after_s = max(retry_after_s, math.ceil((finish_ms - deadline_ms) / 1000))
    return Estimate(sum(int(d) for d in depths), int(ahead), workers, finish_ms, retry_after_s)
