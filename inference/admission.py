"""Admission control: estimate a new job's wait from the queue and measured batch times, before accepting it."""

from __future__ import annotations

import math
import uuid
from collections.abc import Mapping
from dataclasses import dataclass

from inference.batch_time import batch_estimate_ms, central_estimate_ms, tokens_per_job
from inference.queue import LANES, WORKER_ALIVE_S, JobQueue, LanePeek, lane_peek, long_run_fields, stats_read
from inference.scheduler import (
    SchedulerSettings,
    full_batch_central_ms,
    full_batch_estimate_ms,
    jobs_per_batch,
    long_start_by_ms,
)

RANKS_READ = 512  # short jobs whose ranks admission reads (the rest rank later: counted first, to be safe)
PROBE_MARGIN_MS, PROBE_MARGIN = 100, 0.1  # a probe's margin: at least 100 ms, or a tenth of its batch
HOLD_MS = 30_000  # a held place outlives its request that long at most (a database lock can hold a commit)


@dataclass(frozen=True)
class Estimate:
    waiting: int  # jobs waiting in all lanes
    ahead: int  # jobs the new one would wait behind in its lane (by rank: priority and deadline)
    workers: int  # live workers serving the job's lane
    finish_ms: float | None  # None until a batch time has been measured in this lane
    retry_after_s: int
    long_late_ms: float = 0.0  # how late accepting it would leave an accepted long job (see long_late_ms)
    long_share_over_ms: float = 0.0  # long work booked past the long lane's share (see long_share_pct)
    # When a worker serving its lane is idle and nothing waits for it: one batch as things stand, plus a
    # window and a margin. A job that fits may go as a probe whatever the margins say (admission_estimate).
    probe_finish_ms: float | None = None
    place: str | None = None  # the place held in the lane for this request (admission_estimate's hold)

    def misses(self, deadline_ms: int) -> bool:
        """The estimate finishes after the deadline."""
        return self.finish_ms is not None and self.finish_ms > deadline_ms

    def probe_fits(self, deadline_ms: int) -> bool:
        """The job could go at once as a probe of an idle lane (JobQueue.claim_probe: one at a time)."""
        return self.probe_finish_ms is not None and self.probe_finish_ms <= deadline_ms


def admission_estimate(
    queue: JobQueue,
    settings: SchedulerSettings,
    *,
    lane: str,
    priority: str,
    deadline_ms: int,
    tokens: int = 0,
    prior: Mapping[str, str] | None = None,
    hold: bool = False,
) -> Estimate:
    """One Redis round trip. The estimate: until the first of the lane's workers is free (the rest of
    its batch in flight, as planned), then the batches ahead of the job and its own, shared among the
    lane's live workers, plus one window. Each batch is planned as a full batch of the lane's usual
    jobs, at its likely upper bound (see inference.batch_time).

    Where workers serve both lanes, a long job also waits for the short jobs waiting (their deadlines
    are earlier: they go first), and a short job for the long work that must be done before its
    deadline (see running_long_due_ms and waiting_long_due_ms), and must not make an accepted long job
    late (long_late_ms); a long job must leave short jobs their share of those workers (long_share_pct).

    Batch times come from the lane's measurements, anchored to the baseline the workers measured at start,
    or to `prior` (inference.batch_time.model_prior) before any did: never "nothing known, admit all".
    A probe: when a live worker serving the lane is idle and no job waits in the lanes it serves, the
    job would start after one window; it may be admitted if one batch as things stand (without the
    margin, but with a small one for the way to the lease) fits its deadline; one probe at a time per
    lane (JobQueue.claim_probe). Measurements from an overload that nothing runs to correct can then never
    refuse a job an idle node could serve, and the probe's own batch corrects them.

    With `hold`, the job's place in its lane is held first, in the same round trip (Estimate.place: the
    caller releases it if it refuses the job; queueing the job gives it up): the jobs ahead, the queue's
    depth and the short ranks count the places other requests hold, so a burst of concurrent requests,
    each reading before the others have queued their jobs, is not admitted as if each came alone."""
    now = queue.now()
    rank = now * 1000 + deadline_ms - settings.head_start_ms(priority)
    pipe = queue.redis.pipeline(transaction=False)
    if hold:
        queue.hold_place_in(pipe, lane, token=uuid.uuid4().hex, rank=rank, hold_ms=HOLD_MS)
    for name in LANES:
        pipe.zcard(queue.lane_key(name))
        pipe.zcard(queue.held_key(name))
    pipe.zcount(queue.lane_key(lane), "-inf", rank)
    pipe.hgetall(queue.stats)
    pipe.zrangebyscore(queue.lane_workers_key(lane), now - WORKER_ALIVE_S, "+inf")  # those serving its lane
    pipe.zrangebyscore(queue.lane_workers_key("long"), now - WORKER_ALIVE_S, "+inf")
    pipe.zrangebyscore(queue.lane_workers_key("short"), now - WORKER_ALIVE_S, "+inf")
    pipe.hgetall(queue.busy_key)
    pipe.hgetall(queue.long_runs_key)
    queue.peek_in(pipe, "long", 1)
    answers = pipe.execute()
    place = answers.pop(0) if hold else None
    queued_and_held = answers[: 2 * len(LANES)]
    ahead, stats, workers, long_workers, short_workers, busy, long_runs, long_head = answers[2 * len(LANES) :]
    # What others hold counts as waiting, and as ahead whatever its rank: of two requests whose reads cross,
    # the later reader must count the other (their ranks come from clocks read before either held a place).
    # This request's own place is itself, not a job ahead of it.
    held = {name: int(n) - (hold and name == lane) for name, n in zip(LANES, queued_and_held[1::2], strict=True)}
    depths = [int(queued) + held[name] for name, queued in zip(LANES, queued_and_held[::2], strict=True)]
    ahead = int(ahead) + held[lane]
    measurements = stats_read({**(prior or {}), **stats}, now)
    per_job = max(tokens, tokens_per_job(measurements, lane) or tokens)
    per_batch = jobs_per_batch(settings, lane, per_job)
    # Every batch planned full, at its upper bound, and never below a full batch of the lane's usual jobs:
    # expiry ends a waiting job only when even the central estimate of such a batch misses its deadline,
    # so what is admitted here is not expired later for want of time while the estimates hold.
    own_tokens = int(per_batch * per_job) or None
    full_central_ms = full_batch_central_ms(settings, measurements, lane)
    batch_ms = max(
        batch_estimate_ms(measurements, lane, own_tokens), full_batch_estimate_ms(settings, measurements, lane)
    )
    finish_ms, late_ms, over_ms = None, 0.0, 0.0
    retry_after_s = max(1, math.ceil(batch_ms / 1000))  # one batch drains the head of the queue
    if batch_ms:
        work_ms = math.ceil((int(ahead) + 1) / per_batch) * batch_ms
        free_in_ms = min((_free_in_ms(name, busy, long_runs, lane, now) for name in workers), default=0.0)
        # Work of the other lane on the workers that serve both, as shared among all who serve it.
        if lane == "long" and (sharing := set(workers) & set(short_workers)):
            # Short jobs waiting have earlier deadlines and go first (a long batch stands aside for them).
            short_batch = jobs_per_batch(settings, "short", tokens_per_job(measurements, "short") or 0)
            short_waiting = int(depths[LANES.index("short")])
            short_ms = math.ceil(short_waiting / short_batch) * full_batch_estimate_ms(settings, measurements, "short")
            # The long work booked until its deadline (the jobs ahead, its own, the batches in progress)
            # may fill only the lane's share of the shared workers' time (all of a long-only worker's):
            # short jobs keep the rest. A long job in an idle lane is never refused for it (it could
            # never run otherwise).
            running_ms = sum(long_run_fields(run)[1] for name, run in long_runs.items() if name in sharing)
            if int(depths[LANES.index("long")]) or running_ms:
                workers_time = len(workers) - len(sharing) + len(sharing) * settings.long_share_pct / 100
                over_ms = work_ms + running_ms - deadline_ms * workers_time
            work_ms += short_ms * len(sharing) / len(short_workers)
        if lane == "short" and (sharing := set(workers) & set(long_workers)):
            runs = [long_run_fields(run) for name, run in long_runs.items() if name in sharing]  # one per worker
            by = now + (deadline_ms - batch_ms - settings.window_ms) / 1000  # when its batch must start at the latest
            waiting_ms = waiting_long_due_ms(lane_peek(long_head), measurements, by=by)
            work_ms += running_long_due_ms(runs, by=by) + waiting_ms * len(sharing) / len(long_workers)
            short_ranks = _short_ranks(queue, place, int(depths[LANES.index("short")])) if runs or long_head[0] else []
            late_ms, due_in_ms = long_late_ms(
                runs, lane_peek(long_head), measurements, short_ranks, rank=rank, now_ms=now * 1000,
                start_in_ms=free_in_ms + settings.window_ms, workers=max(1, len(workers)),
                short_batch=per_batch, short_batch_ms=batch_ms,
                shared_fraction=len(sharing) / len(long_workers),
            )  # fmt: skip
            retry_after_s = max(retry_after_s, math.ceil(due_in_ms / 1000))  # by then that long job is done
        # Shared among the workers, but its own batch runs on one of them.
        finish_ms = free_in_ms + max(work_ms / max(1, len(workers)), batch_ms) + settings.window_ms
        retry_after_s = max(retry_after_s, math.ceil((finish_ms - deadline_ms) / 1000), math.ceil(over_ms / 1000))
    depth = sum(int(d) for d in depths)
    idle = _idle_workers(workers, busy, long_runs, dict(zip(LANES, (int(d) for d in depths), strict=True)),
                         {"short": set(short_workers), "long": set(long_workers)})  # fmt: skip
    probe_ms = None
    if idle and batch_ms:
        central_ms = max(central_estimate_ms(measurements, lane, own_tokens), full_central_ms)
        # The margin: from admission to the lease, the request commits, the window waits, a busy machine
        # lags; at the lease the job must still have a batch's central time left, or it is expired.
        probe_ms = central_ms + settings.window_ms + max(PROBE_MARGIN_MS, central_ms * PROBE_MARGIN)
    return Estimate(
        depth, int(ahead), max(1, len(workers)), finish_ms, retry_after_s, max(0.0, late_ms), max(0.0, over_ms),
        probe_ms, place,
    )  # fmt: skip


def _short_ranks(queue: JobQueue, place: str | None, waiting: int) -> list[float]:
    """The ranks of the short jobs waiting, read only when long work is due (a second round trip, spared
    the common case). Places other requests hold, and jobs beyond RANKS_READ, count as ranked first."""
    pipe = queue.redis.pipeline(transaction=False)
    pipe.zrange(queue.lane_key("short"), 0, RANKS_READ - 1, withscores=True)
    pipe.zrange(queue.held_key("short"), 0, RANKS_READ - 1)
    ranks, held = pipe.execute()
    others_held = sum(1 for member in held if member != place)
    unread = waiting - len(ranks) - others_held
    return [-math.inf] * (others_held + max(0, unread)) + [score for _, score in ranks]


def _idle_workers(
    workers: list[str],
    busy: Mapping[str, str],
    long_runs: Mapping[str, str],
    depths: Mapping[str, int],
    serving: Mapping[str, set[str]],
) -> list[str]:
    """The live workers of the lane that run nothing and have nothing waiting in any lane they serve."""
    return [
        name
        for name in workers
        if name not in busy
        and name not in long_runs
        and not any(depths[lane] for lane, names in serving.items() if name in names)
    ]


# The long lane's model time that must be spent before `by` (Redis clock, s) for its jobs to keep their
# deadlines. Long work with time to spare does not count: it stands aside for short batches.


def running_long_due_ms(runs: list[tuple[float, float]], *, by: float) -> float:
    """Of each long batch in progress (finish by, ms left: see JobQueue.set_long_run), what its time
    after `by` cannot hold."""
    return sum(max(0.0, left_ms - max(0.0, finish_by - by) * 1000) for finish_by, left_ms in runs)


def waiting_long_due_ms(waiting: LanePeek, measurements: Mapping[str, float], *, by: float) -> float:
    """Of the long jobs waiting, what they cannot leave until after `by`: all of them must be done by
    the head's deadline, at the latest (long_start_by_ms)."""
    if not waiting.waiting:
        return 0.0
    work_ms = waiting.head_deadline_ms - long_start_by_ms(waiting, measurements)
    return max(0.0, work_ms - max(0.0, waiting.head_deadline_ms - by * 1000))


def long_late_ms(
    runs: list[tuple[float, float]],
    waiting: LanePeek,
    measurements: Mapping[str, float],
    short_ranks: list[float],
    *,
    rank: float,
    now_ms: float,
    start_in_ms: float,
    workers: int,
    short_batch: int,
    short_batch_ms: float,
    shared_fraction: float = 1.0,
) -> tuple[float, float]:
    """How late a new short job of this rank would leave an accepted long job, at worst (ms; 0: none),
    and in how long that job is due (ms).

    Earliest deadline first, checked at each long job's deadline as the worker plans it: a running
    batch's finish by, and the waiting head's deadline, by which all waiting long jobs must be done
    (long_start_by_ms: the worker starts the long lane that early). The short batches ranked before
    it, the new job's included, and the long work due by then must fit in the time left. The new
    job's own finish counts only the long work that cannot wait (running_long_due_ms), so without
    this check it takes time a long job needs later: the worker then runs the long job first, as it
    must, and short jobs accepted after the new one expire."""
    points = [(finish_by * 1000, left_ms) for finish_by, left_ms in runs]
    if waiting.waiting:
        work_ms = waiting.head_deadline_ms - long_start_by_ms(waiting, measurements)
        points.append((waiting.head_deadline_ms, work_ms * shared_fraction))
    late_ms = due_in_ms = 0.0
    for point, _ in points:
        if point <= now_ms or rank > point:
            continue  # late already (its work is due now), or the new job goes after it
        shorts = 1 + sum(1 for ranked in short_ranks if ranked <= point)
        work_ms = math.ceil(shorts / short_batch) * short_batch_ms + sum(w for at, w in points if at <= point)
        late = now_ms + start_in_ms + work_ms / workers - point
        if late > 0:
            late_ms, due_in_ms = max(late_ms, late), max(due_in_ms, point - now_ms)
    return late_ms, due_in_ms


def _free_in_ms(worker: str, busy: Mapping[str, str], long_runs: Mapping[str, str], lane: str, now: float) -> float:
    """When this worker can start a batch of the lane: after the batch it runs, and for a long job, after
    the long batch it runs in steps too (short jobs count that one's due work instead)."""
    until = float(busy.get(worker, 0))
    if lane == "long" and worker in long_runs:
        until = max(until, now + long_run_fields(long_runs[worker])[1] / 1000)
    return max(0.0, until - now) * 1000
