"""The threads beside a worker's batch loop: the timer, the expiry timer and the heartbeat, each a loop of one
step that logs a failure without flooding the log and never dies of one."""

from __future__ import annotations

import logging
import sys
import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from inference.worker import BatchWorker

log = logging.getLogger(__name__)

HEARTBEAT_EVERY_S = 2.0
TIMER_EVERY_S = 0.1  # expiry checks and settings pick-up: well inside the one second a change may take
RETRY_MAX_DELAY_S = 2.0  # the loop's longest wait between tries: work resumes this soon after an outage ends


def retry_delay_s(failures: int) -> float:
    """The loop's wait after this many failed steps in a row: 0.5 s, 1 s, then 2 s between tries for as long as
    the outage lasts. A try costs one connection attempt, and a longer wait would only delay the work once
    Redis or the database answer again."""
    return min(RETRY_MAX_DELAY_S, 0.25 * 2 ** min(failures, 8))


class FailureLog:
    """Logs a failure that repeats without flooding the log: the first with its traceback, then the 2nd, 4th,
    8th ... as one line each, and one line once it works again: an outage does not log a traceback every tick."""

    def __init__(self, what: str):
        self.what = what
        self.count = 0

    def failed(self) -> int:
        """Call in an except block; returns the failures in a row."""
        self.count += 1
        if self.count == 1:
            log.exception("%s failed", self.what)
        elif self.count & (self.count - 1) == 0:
            log.error("%s still fails (%d tries in a row): %s", self.what, self.count, sys.exc_info()[1])
        return self.count

    def worked(self) -> None:
        if self.count:
            log.warning("%s works again after %d failed tries", self.what, self.count)
            self.count = 0


def _every(step, *, what: str, seconds: float, until: threading.Event) -> None:
    failures = FailureLog(what)
    while not until.is_set():
        try:
            step()
            failures.worked()
        except Exception:
            failures.failed()
        until.wait(seconds)


def timer_forever(worker: BatchWorker) -> None:
    """Settings pick-up, dead workers' jobs put back, the long batch's checks: Redis only."""
    _every(worker.timer_step, what=f"{worker.name}: the timer", seconds=TIMER_EVERY_S, until=worker.stopping)


def expiry_forever(worker: BatchWorker) -> None:
    """The expiry timer, in a thread of its own because it writes to the database."""
    _every(worker.expiry_step, what=f"{worker.name}: the expiry timer", seconds=TIMER_EVERY_S, until=worker.stopping)


def beat_forever(worker: BatchWorker) -> None:
    """The heartbeat, which renews the leases of the jobs in flight, in a thread of its own that touches
    nothing but Redis: a database that hangs (the expiry timer's writes, the batch's storing) never
    silences it, or other workers would take this worker's jobs for a dead one's (and /readyz and the
    dashboard call it gone). It beats until the batch thread is done, so a worker stopping gracefully
    keeps the batch it finishes."""

    def beat() -> None:
        worker.heartbeat()
        worker.queue.sync_clock()

    _every(beat, what=f"{worker.name}: the heartbeat", seconds=HEARTBEAT_EVERY_S, until=worker.finished)


def start_beside(worker: BatchWorker) -> None:
    for target, name in [(timer_forever, "timer"), (expiry_forever, "expiry"), (beat_forever, "heartbeat")]:
        threading.Thread(target=target, args=(worker,), name=name, daemon=True).start()
