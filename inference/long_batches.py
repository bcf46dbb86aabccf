"""A long batch run in steps that short batches may come between, and the state it shares between threads.

The batch thread begins and ends a long batch and asks between its tokens whether short jobs may go first;
the timer thread reports what it reads in Redis (observe). Both talk to LongBatches, the one owner of that
state: neither thread writes the other's fields, except that the batch thread also looks at the short lane
as a long batch starts, and may then set (never clear) what the timer reports. (Each call names the
worker's queue, the store it reads.)
The rules are the planner's (short_may_go, short_at_risk, long_finish_by).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass, field

import redis

from inference.generation import BatchOutput
from inference.lanes import Lane
from inference.planning import long_finish_by, long_left_ms, short_at_risk, short_may_go
from inference.settings import SchedulerSettings
from inference.store.queue import JobQueue

log = logging.getLogger(__name__)


@dataclass(eq=False)
class LongRun:
    """A long batch in progress, which short batches may interrupt between its steps."""

    deadline: float  # its earliest job deadline, local time
    measurements: dict[str, float]
    tokens: int  # its padded prompt tokens
    started: float = field(default_factory=time.time)
    paused_s: float = 0.0
    may_pause: bool = True
    finish_by: float = 0.0  # its deadline, or earlier when long jobs wait behind it (planning.long_finish_by)
    paused_since: float | None = None  # in a pause now, since then

    def model_s(self, now: float) -> float:
        """Its time on the model so far: time since it started, less its pauses."""
        return now - self.started - self.paused_s - (now - self.paused_since if self.paused_since else 0.0)

    def __post_init__(self):
        self.finish_by = self.finish_by or self.deadline


class LongBatches:
    """The long batch a worker runs now (at most one), and what the timer saw of the short lane meanwhile."""

    def __init__(self, worker: str):
        self.worker = worker
        self.short_waiting = threading.Event()  # set by the timer while a long batch runs and short jobs wait
        self.short_at_risk = threading.Event()  # the same, when the first of them is about to expire
        self._lock = threading.Lock()  # the timer publishes a long run only while it runs
        self._run: LongRun | None = None
        self._left = False  # its entry in the long-runs hash outlived the long batch (Redis was away)

    # --- the batch thread --------------------------------------------------------------------

    def begin(self, queue: JobQueue, run: LongRun) -> None:
        """A long batch starts: admission sees it at once (published before its first step)."""
        with self._lock:
            self._run = run
        self._publish(queue, run)

    def end(self, queue: JobQueue, run: LongRun) -> None:
        with self._lock:
            self._run = None
            try:
                queue.clear_long_run(self.worker)
            except redis.RedisError:  # the model's work is done: the timer clears it once Redis answers
                self._left = True

    def run_in_steps(
        self,
        queue: JobQueue,
        run: LongRun,
        steps: Generator[None, None, BatchOutput],
        *,
        settings: Callable[[], SchedulerSettings],
        run_short: Callable[[], bool],
    ) -> BatchOutput:
        """Run a long batch's steps to its output. Before each step, while short jobs may go first, run_short
        runs one short batch (False: none waited); each counts at once as paused time, so the next check
        sees where the long batch really stands. Short jobs waiting as it starts go before its first step:
        a step (a prefill chunk) may take a second, which admission did not plan them to wait."""
        try:
            self.begin(queue, run)
            try:  # now: the timer only looks every tick
                self._look_at_short_lane(queue, run, settings(), clear=False)
            except redis.RedisError:  # the timer looks again within a tick: no reason to hold the batch up
                log.warning("%s: could not see the short lane as a long batch started", self.worker)
            while True:
                while self.short_may_go(run, settings()) and self._pause(run, run_short):
                    pass
                try:
                    next(steps)
                except StopIteration as done:
                    return done.value
        finally:
            self.end(queue, run)

    def _pause(self, run: LongRun, run_short: Callable[[], bool]) -> bool:
        run.paused_since = time.time()
        ran = True
        try:
            ran = run_short()
        except Exception:
            # Redis or the database failed: finish the long batch first; the worker's retry step then finishes
            # the short one (it is in flight, its leases renewed).
            log.exception("%s: a short batch inside a long one failed", self.worker)
            run.may_pause = False
        finally:
            run.paused_s += time.time() - run.paused_since
            run.paused_since = None
        if not ran:
            self.short_lane_empty()
        return ran

    def short_may_go(self, run: LongRun, settings: SchedulerSettings) -> bool:
        """Called between tokens: no Redis here (the timer keeps short_waiting and short_at_risk)."""
        if not (run.may_pause and self.short_waiting.is_set()):
            return False
        return short_may_go(run, settings, now=time.time(), short_at_risk=self.short_at_risk.is_set())

    def short_lane_empty(self) -> None:
        """A pause found no short job to run: until the timer sees more, the long batch runs on."""
        self.short_waiting.clear()
        self.short_at_risk.clear()

    # --- the timer thread --------------------------------------------------------------------

    def observe(self, queue: JobQueue, settings: SchedulerSettings) -> None:
        """One tick of the timer: while a long batch runs, do short jobs wait, is the first about to expire, and
        by when must the long batch finish; after one that ended while Redis was away, clear what it said."""
        run = self._run
        if run is not None:
            self._look_at_short_lane(queue, run, settings)
            self._publish(queue, run)
        elif self._left:  # admission must not count a long batch that ended
            queue.clear_long_run(self.worker)
            self._left = False

    def _look_at_short_lane(
        self, queue: JobQueue, run: LongRun, settings: SchedulerSettings, *, clear: bool = True
    ) -> None:
        """Set (and, on the timer, clear) what the short lane holds: the batch thread only sets, so an older
        look of its own never clears what the timer has just seen."""
        head = queue.peek(Lane.SHORT, 1)
        if head.waiting:
            self.short_waiting.set()
        if short_at_risk(head, settings, run.measurements):
            self.short_at_risk.set()
        elif clear:
            self.short_at_risk.clear()

    def _publish(self, queue: JobQueue, run: LongRun) -> None:
        """Long jobs waiting behind this batch need their time too: its finish-by, and for admission, by
        when it must finish and how much model time it has left."""
        run.finish_by = long_finish_by(run, queue.peek(Lane.LONG, 1), clock_offset=queue.clock_offset)
        left_ms = long_left_ms(run, now=time.time())
        with self._lock:
            if self._run is run:  # not after the batch ended and cleared it
                queue.set_long_run(self.worker, run.finish_by + queue.clock_offset, left_ms)
