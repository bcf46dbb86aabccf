"""The planner: every scheduling rule, as pure functions of what was read and the time it was read at.

Admission (inference.admission), the window (inference.scheduler), expiry and the long lane's pace
(inference.worker) read Redis and then ask these functions what to do; none decides on its own. So each
rule is one function that a test calls with numbers, and the rules that must agree (a job admission
admits is not expired by the same numbers) agree because they share the functions below.

The contract these rules keep is written down in inference/README.md.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple, Protocol

from inference.batch_time import batch_estimate_ms, central_estimate_ms, decoding, output_extra_ms, tokens_per_job
from inference.lanes import LANES, Lane
from inference.messages import gettext_noop
from inference.settings import SchedulerSettings

PROBE_MARGIN_MS, PROBE_MARGIN = 100, 0.1  # a probe's margin: at least 100 ms, or a tenth of its batch
# How much longer a window waits for jobs being admitted to its lane: more than a submission takes in
# a burst on two cores (BENCHMARKS.md, web server under bursts), and short against a batch.
ARRIVING_WAIT_MS = 250
# A short job this close to expiring may interrupt a long batch (short_may_go): the time for the long
# batch to reach the end of its step, or this much where a step is quicker.
SHORT_AT_RISK_MS = 1_000


# --- what the planner reads ---------------------------------------------------------------------


@dataclass(frozen=True)
class LanePeek:
    """The head of a lane as read at now_ms (Redis clock, ms)."""

    waiting: int
    head_arrived_ms: int
    head_deadline_ms: int
    padded_tokens: int  # of the first max_count jobs, were they a batch
    now_ms: int
    held: int = 0  # places held in the lane by requests being admitted: jobs that may arrive any moment


@dataclass(frozen=True)
class ExpiredJob:
    job_id: int
    lane: str
    deadline_ms: int
    estimate_ms: float = 0.0  # the batch time it was judged by


LongRunFacts = tuple[float, float]  # a long batch in progress: finish by (Redis clock, s), model ms left


@dataclass(frozen=True)
class AdmissionView:
    """Everything admission decides on, read in one round trip at `now` (Redis clock, s)."""

    now: float
    depths: Mapping[str, int]  # jobs waiting per lane, places held by other requests included
    ahead: int  # jobs (and places others hold) the new job would wait behind in its lane
    measurements: Mapping[str, float]
    serving: Mapping[str, Sequence[str]]  # the live workers serving each lane
    busy: Mapping[str, float]  # worker -> busy until (Redis clock, s)
    long_runs: Mapping[str, LongRunFacts]  # worker -> its long batch in progress
    long_head: LanePeek
    short_ranks: Sequence[float] = ()  # the short lane's ranks, where needs_short_ranks says so
    place: str | None = None  # the place held for this request, if it held one


# --- batches ----------------------------------------------------------------------------------


def jobs_per_batch(settings: SchedulerSettings, lane: str, per_job_tokens: float) -> int:
    """How many jobs of this many padded tokens each one batch of the lane holds (at least one)."""
    return max(1, min(settings.max_batch_size, int(settings.batch_tokens(lane) // max(1.0, per_job_tokens))))


def full_batch_tokens(settings: SchedulerSettings, measurements: Mapping[str, float], lane: str) -> int | None:
    """The padded tokens of a full batch of the lane's usual jobs (None until a job's tokens are measured)."""
    per_job = tokens_per_job(measurements, lane)
    return None if per_job is None else int(jobs_per_batch(settings, lane, per_job) * per_job)


def full_batch_estimate_ms(settings: SchedulerSettings, measurements: Mapping[str, float], lane: str) -> float:
    """A full batch of the lane's usual jobs, at its likely upper bound: how admission plans the batches
    ahead of a job."""
    return batch_estimate_ms(measurements, lane, full_batch_tokens(settings, measurements, lane))


def full_batch_central_ms(settings: SchedulerSettings, measurements: Mapping[str, float], lane: str) -> float:
    """A full batch of the lane's usual jobs as things stand, without the margin: expiry ends a waiting
    job only when even this would finish after its deadline. Admission always plans at least this much
    (its own batch is at least as big, with the margin or, for a probe, without), so a job it admits is
    never expired at once."""
    return central_estimate_ms(measurements, lane, full_batch_tokens(settings, measurements, lane))


def long_step_ms(settings: SchedulerSettings, measurements: Mapping[str, float]) -> float:
    """How long one step of a long batch run in steps may take, which a short batch that becomes due
    during it waits for: a prefill chunk of long_chunk_tokens for each of its rows, or one decoding step,
    whichever is longer. The chunk is its share of the prefill in the lane's full batch: that batch's
    time less its decoding (batch_time.decoding), times the chunk over a job's tokens, with the margin
    of the lane's estimate. This is an average chunk: one late in a long prompt reads all the tokens
    before it and takes about 1.3 times as long (BENCHMARKS.md, overload on float16), more than the
    margin may cover. 0 while the long lane's time is unknown, and where long batches run in one piece
    (no chunks)."""
    per_job = tokens_per_job(measurements, Lane.LONG)
    if not settings.long_chunk_tokens or not per_job:
        return 0.0
    central = full_batch_central_ms(settings, measurements, Lane.LONG)  # each row reads a chunk a step
    if not central:
        return 0.0
    steps, step_ms = decoding(measurements, Lane.LONG) or (0.0, 0.0)
    chunk_ms = max(0.0, central - steps * step_ms) * min(1.0, settings.long_chunk_tokens / per_job)
    return max(chunk_ms, step_ms) * full_batch_estimate_ms(settings, measurements, Lane.LONG) / central


def batch_central_by_size(settings: SchedulerSettings, measurements: Mapping[str, float], lane: str) -> list[float]:
    """A batch of 1, 2, … jobs of the lane's usual size, up to a full one, as things stand (central): the
    lease and expiry judge a job by the batch it would run in now, which is not always full. Never more
    than a full batch (full_batch_central_ms), so a job admission admits is not expired for it. One
    number for all sizes until a job's tokens are known."""
    per_job = tokens_per_job(measurements, lane)
    full_ms = full_batch_central_ms(settings, measurements, lane)
    if per_job is None:
        return [full_ms]
    per_batch = jobs_per_batch(settings, lane, per_job)
    return [min(full_ms, central_estimate_ms(measurements, lane, int(k * per_job))) for k in range(1, per_batch + 1)]


# --- expiry -------------------------------------------------------------------------------------


def batch_ms_of_size(by_size: Sequence[float], jobs: int) -> float:
    """A batch of `jobs` jobs from batch_central_by_size's list (the last entry for any larger batch).
    The queue's Lua scripts read the list the same way (`sized` in inference.store.queue)."""
    return by_size[max(1, min(jobs, len(by_size))) - 1] if by_size else 0.0


def expires(deadline_ms: float, now_ms: float, batch_ms: float) -> bool:
    """A waiting job expires when its batch, started now, would finish after its deadline. The queue's Lua
    scripts apply this rule at the lease and on the expiry timer, with batch_ms_of_size's estimate."""
    return deadline_ms < now_ms + batch_ms


def expiry_reason(job: ExpiredJob, now_ms: float) -> str:
    if job.deadline_ms <= now_ms:
        return f"expired: its deadline passed while it waited in the {job.lane} lane"
    return (
        f"expired: it could not finish by its deadline ({job.deadline_ms - now_ms:.0f} ms left, "
        f"its {job.lane} batch would take about {job.estimate_ms:.0f} ms)"
    )


# --- which lane, and how long a window --------------------------------------------------------


def long_start_by_ms(peek: LanePeek, measurements: Mapping[str, float]) -> float:
    """When the long lane must start at the latest (Redis clock, ms) so that every job waiting in it can
    still run back to back by its deadline: the head's deadline less one batch per waiting job. Later jobs
    have later deadlines (or a higher priority, and then the head start they got is theirs to use), so
    this is never later than needed."""
    per_job = tokens_per_job(measurements, Lane.LONG)
    each_ms = batch_estimate_ms(measurements, Lane.LONG, None if per_job is None else int(per_job))
    return peek.head_deadline_ms - peek.waiting * each_ms


def choose_lane(
    peeks: Mapping[str, LanePeek], measurements: Mapping[str, float], window_ms: int, *, long_stands_aside: bool = False
) -> Lane | None:
    """Short jobs first; the long lane runs when the short lane is empty, or when waiting for one more
    short batch would make one of its jobs miss its deadline. Neither starves: short batches are only
    put off by a long batch that had to run, and long jobs run at the latest when they must.

    Where a long batch stands aside for short ones (long_stands_aside: the worker runs it in steps), a
    long job with time to share, as much again as its own work, starts at once: its pace then lets short
    batches through while it runs (short_may_go). Started late, it would have no slack left to share,
    and run in one piece while short jobs wait. A long job with less slack waits as above, so that a few
    long prompts arriving together do not run back to back while short jobs wait."""
    waiting = [lane for lane in LANES if lane in peeks and peeks[lane].waiting]
    if len(waiting) < 2:
        return waiting[0] if waiting else None
    long = peeks[Lane.LONG]
    slack_ms = long_start_by_ms(long, measurements) - long.now_ms
    if slack_ms < batch_estimate_ms(measurements, Lane.SHORT) + window_ms:
        return Lane.LONG
    if (
        long_stands_aside
        and slack_ms >= batch_estimate_ms(measurements, Lane.LONG)
        and measurements.get(f"batch_ms:{Lane.LONG}")
    ):
        return Lane.LONG
    return Lane.SHORT


class Why(NamedTuple):
    """A reason the pages show: an English text (marked for translation) and its values. str() is the English,
    as machines and logs read it."""

    text: str
    params: Mapping[str, int] = {}

    def __str__(self) -> str:
        return self.text % self.params if self.params else self.text


def effective_window(settings: SchedulerSettings, measurements: Mapping[str, float], now_ms: int) -> tuple[int, Why]:
    """The window to wait, and why. Fixed unless adaptive: then as long as it takes the measured arrival
    rate to fill a batch, at most window_ms, and none when arrivals are too sparse to gain anything."""
    if not settings.adaptive_window:
        return settings.window_ms, Why(gettext_noop("fixed"))
    gap = measurements.get("arrival_gap_ms")
    last = measurements.get("last_arrival_ms")
    if gap is None or last is None:
        return settings.window_ms, Why(gettext_noop("adaptive: no arrival rate measured yet, using the maximum"))
    gap = max(gap, now_ms - last)  # arrivals that stopped count as a slower rate
    if gap >= settings.window_ms:
        return 0, Why(
            gettext_noop("adaptive: one arrival per %(gap)d ms, waiting would not add a job"), {"gap": round(gap)}
        )
    fill_ms = gap * (settings.max_batch_size - 1)
    if fill_ms < settings.window_ms:
        return int(fill_ms), Why(
            gettext_noop("adaptive: one arrival per %(gap)d ms fills a batch in %(fill)d ms"),
            {"gap": round(gap), "fill": round(fill_ms)},
        )
    return settings.window_ms, Why(
        gettext_noop("adaptive: one arrival per %(gap)d ms, steady load, the maximum window"), {"gap": round(gap)}
    )


def window_close(
    peek: LanePeek, settings: SchedulerSettings, lane: str, *, opened_ms: int, window_ms: int, batch_ms: float
) -> tuple[str | None, int]:
    """Whether a window of the lane anchored at opened_ms closes now, and why ("full", "tokens", "timeout",
    "deadline"; None: it waits on), with the time it closes at unless something closes it first.

    It closes at window_ms, when max_batch_size jobs or the lane's token budget are waiting, or early when
    waiting longer would make the head job miss its deadline (batch_ms: a full batch's central time). While
    requests hold places in the lane, admission has planned their jobs into this batch: it waits up to
    ARRIVING_WAIT_MS longer for them, the head's deadline still closing it early."""
    closes_ms = opened_ms + window_ms
    if peek.held:
        closes_ms += max(window_ms, ARRIVING_WAIT_MS)
    if peek.waiting >= settings.max_batch_size:
        return "full", closes_ms
    if peek.padded_tokens >= settings.batch_tokens(lane):
        return "tokens", closes_ms
    if peek.now_ms >= closes_ms:
        return "timeout", closes_ms
    if closes_ms + batch_ms > peek.head_deadline_ms:
        return "deadline", closes_ms
    return None, closes_ms


# --- admission ----------------------------------------------------------------------------------


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
    # window and a margin. A job that fits may go as a probe whatever the margins say (plan_admission).
    probe_finish_ms: float | None = None
    place: str | None = None  # the place held in the lane for this request (see AdmissionView)
    lane_workers: int = 0  # live workers serving the job's lane (`workers` counts at least one, to plan)

    def misses(self, deadline_ms: int) -> bool:
        """The estimate finishes after the deadline."""
        return self.finish_ms is not None and self.finish_ms > deadline_ms

    def probe_fits(self, deadline_ms: int) -> bool:
        """The job could go at once as a probe of an idle lane (JobQueue.claim_probe: one at a time)."""
        return self.probe_finish_ms is not None and self.probe_finish_ms <= deadline_ms


def admission_rank(now: float, deadline_ms: int, head_start_ms: int) -> float:
    """A job's rank in its lane (ms, Redis clock): its deadline less its priority's head start. Lower goes
    first. The queue's enqueue script ranks a queued job the same way."""
    return now * 1000 + deadline_ms - head_start_ms


def needs_short_ranks(view: AdmissionView, lane: str) -> bool:
    """A short job on workers that also serve the long lane, with long work running or waiting there: its
    check against the long jobs' deadlines (long_late_ms) needs the short lane's ranks, a second read that
    the common case is spared."""
    sharing = set(view.serving[lane]) & set(view.serving[Lane.LONG])
    return lane == Lane.SHORT and bool(sharing) and (bool(sharing & set(view.long_runs)) or view.long_head.waiting > 0)


def plan_admission(
    view: AdmissionView,
    settings: SchedulerSettings,
    *,
    lane: str,
    deadline_ms: int,
    rank: float,
    tokens: int = 0,
    max_new_tokens: int = 0,
) -> Estimate:
    """The estimate: until the first of the lane's workers is free (the rest of its batch in flight, as
    planned), then the batches ahead of the job and its own, shared among the lane's live workers, plus
    one window. Each batch is planned as a full batch of the lane's usual jobs, at its likely upper bound
    (see inference.batch_time), and never below a full batch's central time: expiry ends a waiting job
    only when even that misses its deadline, so a job admitted here is not expired for want of time while
    the estimates hold.

    Where workers serve both lanes, a long job also waits for the short jobs waiting (their deadlines
    are earlier: they go first), and a short job for the long work that must be done before its
    deadline (running_long_due_ms, waiting_long_due_ms), and must not make an accepted long job late
    (long_late_ms), and for the end of the long batch's step it may be in when its batch is due
    (long_step_ms); a long job must leave short jobs their share of those workers (long_share_pct).

    A probe: when a live worker serving the lane is idle and no job waits in the lanes it serves, the job
    would start after one window; it may be admitted if one batch as things stand, plus a small margin for
    the way to the lease, fits its deadline (one probe at a time per lane: JobQueue.claim_probe).
    Measurements from an overload that nothing runs to correct can then never refuse a job an idle node
    could serve, and the probe's own batch corrects them.

    The job's own batch is planned for its output: a job that may write more than the lane's batches
    usually do (max_new_tokens) makes that batch longer by the steps past theirs (output_extra_ms)."""
    measurements, depths = view.measurements, view.depths
    workers = view.serving[lane]
    long_workers, short_workers = view.serving[Lane.LONG], view.serving[Lane.SHORT]
    per_job = max(tokens, tokens_per_job(measurements, lane) or tokens)
    per_batch = jobs_per_batch(settings, lane, per_job)
    own_tokens = int(per_batch * per_job) or None
    batch_ms = max(
        batch_estimate_ms(measurements, lane, own_tokens), full_batch_estimate_ms(settings, measurements, lane)
    )
    extra_ms = output_extra_ms(measurements, lane, max_new_tokens) if batch_ms else 0.0
    own_ms = batch_ms + extra_ms
    finish_ms, late_ms, over_ms = None, 0.0, 0.0
    retry_after_s = max(1, math.ceil(batch_ms / 1000))  # one batch drains the head of the queue
    if batch_ms:
        work_ms = math.ceil((view.ahead + 1) / per_batch) * batch_ms + extra_ms
        free_in_ms = min((_free_in_ms(name, view, lane) for name in workers), default=0.0)
        # Work of the other lane on the workers that serve both, as shared among all who serve it.
        if lane == Lane.LONG and (sharing := set(workers) & set(short_workers)):
            # Short jobs waiting have earlier deadlines and go first (a long batch stands aside for them).
            short_batch = jobs_per_batch(settings, Lane.SHORT, tokens_per_job(measurements, Lane.SHORT) or 0)
            short_ms = math.ceil(depths[Lane.SHORT] / short_batch) * full_batch_estimate_ms(
                settings, measurements, Lane.SHORT
            )
            # The long work booked until its deadline (the jobs ahead, its own, the batches in progress)
            # may fill only the lane's share of the shared workers' time (all of a long-only worker's):
            # short jobs keep the rest. A long job in an idle lane is never refused for it (it could
            # never run otherwise).
            running_ms = sum(left_ms for name, (_, left_ms) in view.long_runs.items() if name in sharing)
            if depths[Lane.LONG] or running_ms:
                workers_time = len(workers) - len(sharing) + len(sharing) * settings.long_share_pct / 100
                over_ms = work_ms + running_ms - deadline_ms * workers_time
            work_ms += short_ms * len(sharing) / len(short_workers)
        if lane == Lane.SHORT and (sharing := set(workers) & set(long_workers)):
            runs = [run for name, run in view.long_runs.items() if name in sharing]  # one per worker
            by = view.now + (deadline_ms - own_ms - settings.window_ms) / 1000  # its batch's latest start
            waiting_ms = waiting_long_due_ms(view.long_head, measurements, by=by)
            due_ms = running_long_due_ms(runs, by=by) + waiting_ms * len(sharing) / len(long_workers)
            # A long batch running in steps, or one that may start any moment, is in a step when the short
            # batch is due: it waits for its end, unless it waits for the long batch's due work anyway.
            step_ms = long_step_ms(settings, measurements) if runs or view.long_head.waiting else 0.0
            work_ms += max(due_ms, step_ms)
            late_ms, due_in_ms = long_late_ms(
                runs, view.long_head, measurements, view.short_ranks, rank=rank, now_ms=view.now * 1000,
                start_in_ms=free_in_ms + settings.window_ms, workers=max(1, len(workers)),
                short_batch=per_batch, short_batch_ms=batch_ms,
                shared_fraction=len(sharing) / len(long_workers),
            )  # fmt: skip
            retry_after_s = max(retry_after_s, math.ceil(due_in_ms / 1000))  # by then that long job is done
        # Shared among the workers, but its own batch runs on one of them.
        finish_ms = free_in_ms + max(work_ms / max(1, len(workers)), own_ms) + settings.window_ms
        retry_after_s = max(retry_after_s, math.ceil((finish_ms - deadline_ms) / 1000), math.ceil(over_ms / 1000))
    probe_ms = None
    if _idle_workers(view, lane) and batch_ms:
        central_ms = max(
            central_estimate_ms(measurements, lane, own_tokens), full_batch_central_ms(settings, measurements, lane)
        )
        # The margin: from admission to the lease, the request commits, the window waits, a busy machine
        # lags; at the lease the job must still have a batch's central time left, or it is expired.
        central_ms += extra_ms
        probe_ms = central_ms + settings.window_ms + max(PROBE_MARGIN_MS, central_ms * PROBE_MARGIN)
    return Estimate(
        sum(depths.values()), view.ahead, max(1, len(workers)), finish_ms, retry_after_s, max(0.0, late_ms),
        max(0.0, over_ms), probe_ms, view.place, len(workers),
    )  # fmt: skip


def _idle_workers(view: AdmissionView, lane: str) -> list[str]:
    """The live workers of the lane that run nothing and have nothing waiting in any lane they serve."""
    return [
        name
        for name in view.serving[lane]
        if name not in view.busy
        and name not in view.long_runs
        and not any(view.depths[served] for served, names in view.serving.items() if name in names)
    ]


def _free_in_ms(worker: str, view: AdmissionView, lane: str) -> float:
    """When this worker can start a batch of the lane: after the batch it runs, and for a long job, after
    the long batch it runs in steps too (short jobs count that one's due work instead, or its step)."""
    until = view.busy.get(worker, 0.0)
    if lane == Lane.LONG and worker in view.long_runs:
        until = max(until, view.now + view.long_runs[worker][1] / 1000)
    return max(0.0, until - view.now) * 1000


class Refusal(NamedTuple):
    """Why admission refuses a job: its code for machines, and its English text with %(name)s fields, which
    the web side translates for pages before filling them in (message gives the English)."""

    code: str
    text: str
    params: Mapping[str, object]

    @property
    def message(self) -> str:
        return self.text % self.params


def refusal(
    estimate: Estimate, settings: SchedulerSettings, *, lane: str, deadline_ms: int, probe: bool = False
) -> Refusal | None:
    """The first reason admission refuses the job, or None. A probe of an idle lane is not refused for the
    estimate's time."""
    if estimate.waiting >= settings.queue_limit:
        return Refusal(
            "queue_full",
            gettext_noop("The queue is full (%(waiting)d jobs waiting, the limit is %(limit)d)"),
            {"waiting": estimate.waiting, "limit": settings.queue_limit},
        )
    if estimate.misses(deadline_ms) and not probe:
        return Refusal(
            "deadline_unreachable",
            gettext_noop(
                "The job would finish in about %(finish_ms).0f ms (%(ahead)d jobs ahead in the %(lane)s lane), "
                "after its %(deadline_ms)d ms deadline"
            ),
            {"finish_ms": estimate.finish_ms, "ahead": estimate.ahead, "lane": lane, "deadline_ms": deadline_ms},
        )
    if estimate.long_late_ms > 0:
        return Refusal(
            "long_jobs_due",
            gettext_noop(
                "The worker's time until then is promised to accepted long jobs: this job would make one finish "
                "about %(late_ms).0f ms after its deadline"
            ),
            {"late_ms": estimate.long_late_ms},
        )
    if estimate.long_share_over_ms > 0:
        return Refusal(
            "long_lane_share",
            gettext_noop(
                "The long lane has booked its share (%(share_pct)d %%) of the worker's time until this job's "
                "deadline, short jobs keep the rest"
            ),
            {"share_pct": settings.long_share_pct},
        )
    return None


def share_refusal(waiting: int, settings: SchedulerSettings) -> Refusal | None:
    """Fair share: one sender's waiting jobs may fill only source_share_pct of the queue limit, so a source
    that sends too much cannot give every other one queue_full."""
    share = settings.source_share()
    if share is None or waiting < share:
        return None
    return Refusal(
        "source_share",
        gettext_noop(
            "This sender already has %(waiting)d jobs waiting, its share of the queue (%(share_pct)d %% of the "
            "limit of %(limit)d); other senders keep the rest"
        ),
        {"waiting": waiting, "share_pct": settings.source_share_pct, "limit": settings.queue_limit},
    )


# --- the long lane's due work -------------------------------------------------------------------
# The long lane's model time that must be spent before `by` (Redis clock, s) for its jobs to keep their
# deadlines. Long work with time to spare does not count: it stands aside for short batches.


def running_long_due_ms(runs: Sequence[LongRunFacts], *, by: float) -> float:
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
    runs: Sequence[LongRunFacts],
    waiting: LanePeek,
    measurements: Mapping[str, float],
    short_ranks: Sequence[float],
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


# --- a long batch's pace ------------------------------------------------------------------------


class LongBatch(Protocol):
    """A long batch in progress, as its pace needs it (local time, s)."""

    started: float
    deadline: float  # its earliest job deadline
    finish_by: float  # its deadline, or earlier when long jobs wait behind it (long_finish_by)
    tokens: int  # its padded prompt tokens
    measurements: Mapping[str, float]

    def model_s(self, now: float) -> float: ...


def short_may_go(run: LongBatch, settings: SchedulerSettings, *, now: float, short_at_risk: bool) -> bool:
    """With short jobs waiting: the long batch is ahead of its pace, or a short job is about to expire
    (short_at_risk) and the long batch can still finish in time after one more short batch.

    The pace spreads the long batch's planned time (its lane's estimate for its tokens) evenly until
    it must finish (finish_by), less one short batch and window: ahead of it, the long batch may stand
    aside for one short batch and still finish in time; behind it, it runs. So short jobs wait for a step
    of the long batch now and then, rather than for all of it at once; a long batch without slack to
    share never stands aside. A short job that would expire waiting for the pace to catch up goes first
    while the long batch's own deadline allows (earliest deadline first): accepted short jobs keep their
    deadlines, and long jobs, with their longer deadlines, absorb the delay."""
    work_s = batch_estimate_ms(run.measurements, Lane.LONG, run.tokens) / 1000
    short_ms = full_batch_estimate_ms(settings, run.measurements, Lane.SHORT)
    short_s = (short_ms + settings.window_ms) / 1000
    span_s = run.finish_by - run.started - short_s
    elapsed_s = now - run.started
    done_s = run.model_s(now)
    if not done_s < work_s:
        return False  # nothing measured yet, or past its plan: it runs to the end
    if short_at_risk and run.deadline - now - (work_s - done_s) >= short_s:
        return True  # its own deadline, not finish_by: long jobs waiting behind it come later still
    if not work_s < span_s or elapsed_s >= span_s:
        return False  # no slack to share, or its pace is spent: it runs
    return done_s >= work_s * elapsed_s / span_s


def short_at_risk(head: LanePeek, settings: SchedulerSettings, measurements: Mapping[str, float]) -> bool:
    """The short lane's first job is about to expire: it expires once its time left is under a short
    batch, so it is at risk from a short batch, a window and the time for the long batch to reach the end
    of its step before that (long_step_ms, at least SHORT_AT_RISK_MS)."""
    short_ms = full_batch_estimate_ms(settings, measurements, Lane.SHORT)
    left_ms = head.head_deadline_ms - head.now_ms - short_ms - settings.window_ms
    return bool(head.waiting) and left_ms < max(SHORT_AT_RISK_MS, long_step_ms(settings, measurements))


def long_finish_by(run: LongBatch, waiting: LanePeek, *, clock_offset: float) -> float:
    """By when a long batch must finish (local time, s): its deadline, or earlier so that the long jobs
    waiting behind it can run back to back by theirs (long_start_by_ms)."""
    if not waiting.waiting:
        return run.deadline
    return min(run.deadline, long_start_by_ms(waiting, run.measurements) / 1000 - clock_offset)


def long_left_ms(run: LongBatch, *, now: float) -> float:
    """The model time a long batch has left as planned (its lane's estimate for its tokens), for admission."""
    return max(0.0, batch_estimate_ms(run.measurements, Lane.LONG, run.tokens) - run.model_s(now) * 1000)
