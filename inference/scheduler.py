"""The scheduler: the collection of one window of jobs (its rules: inference.planning)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from inference.lanes import LANES
from inference.planning import (
    ExpiredJob,
    Why,
    batch_central_by_size,
    choose_lane,
    effective_window,
    full_batch_central_ms,
    window_close,
)
from inference.settings import SchedulerSettings
from inference.store.queue import JobQueue, QueuedJob

if TYPE_CHECKING:
    from inference.batch import BatchRun

log = logging.getLogger(__name__)


FIXED = Why("fixed")


@dataclass(eq=False)  # a worker holds windows by identity: two may hold equal-looking jobs
class Window:
    jobs: list[QueuedJob]
    lane: str
    opened_ms: int  # arrival of the job that opened it: the window is anchored there, not at the read
    closed_at: float
    close_reason: str  # "full", "tokens", "timeout", "deadline", "replay"
    settings: SchedulerSettings
    window_ms: int  # the window it waited with (the effective one, if adaptive)
    window_reason: Why = FIXED
    expired: list[ExpiredJob] | None = None  # found while leasing it; ended by run_batch
    measurements: Mapping[str, float] = field(default_factory=dict)  # batch times as read to collect it
    batch: BatchRun | None = None  # its outputs, once the model ran it (until they are stored)
    storage_down: bool = False  # storing them failed because the database was out of reach


def collect_window(
    queue: JobQueue,
    worker: str,
    current_settings: Callable[[], SchedulerSettings],
    *,
    lanes: tuple[str, ...] = LANES,
    lease_ms: int = 60_000,
    long_stands_aside: bool = False,
    sleep: Callable[[float], None] = time.sleep,
) -> Window | None:
    """Pick a lane, wait out its window (anchored at the head job's arrival), then lease the batch.

    current_settings is called on every poll, so a saved change applies to the window in progress.

    When it closes is planning.window_close's rule. Returns None when no lane has work, or when every job
    was expired or taken by another worker meanwhile.
    """
    started = time.time()
    settings = current_settings()
    measurements = queue.measurements()
    peeks = {lane: queue.peek(lane, settings.max_batch_size) for lane in lanes}
    window_ms, why = effective_window(settings, measurements, max(p.now_ms for p in peeks.values()))
    lane = choose_lane(peeks, measurements, window_ms, long_stands_aside=long_stands_aside)
    if lane is None:
        return None
    peek = peeks[lane]
    estimate = full_batch_central_ms(settings, measurements, lane)
    opened_ms = peek.head_arrived_ms
    while True:
        reason, closes_ms = window_close(peek, settings, lane, opened_ms=opened_ms, window_ms=window_ms,
                                         batch_ms=estimate)  # fmt: skip
        if reason is not None:
            break
        sleep(min(0.001, (closes_ms - peek.now_ms) / 1000))
        settings = current_settings()  # a change saved now shortens or ends this window
        window_ms = settings.window_ms if not settings.adaptive_window else min(window_ms, settings.window_ms)
        peek = queue.peek(lane, settings.max_batch_size)
        if peek.waiting == 0:
            return None  # another worker took them
    by_size = batch_central_by_size(settings, measurements, lane)
    jobs, expired = queue.take(lane, worker=worker, max_count=settings.max_batch_size,
                               max_tokens=settings.batch_tokens(lane), est_ms=by_size, lease_ms=lease_ms)  # fmt: skip
    for job in jobs:
        # In the window from when this worker began collecting it, or from the job's arrival if later:
        # queue wait ends there, window wait runs from there to the batch start.
        job.picked_at = max(started, job.enqueued_ms / 1000 - queue.clock_offset)
    return Window(jobs, lane, opened_ms, time.time(), reason, settings, window_ms, why, expired, measurements)
