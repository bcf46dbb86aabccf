"""Admission's read: what a decision on a new job needs, in one round trip, handed to the planner."""

from __future__ import annotations

import dataclasses
import math
import uuid
from collections.abc import Mapping

from inference.lanes import LANES, Lane
from inference.planning import AdmissionView, Estimate, admission_rank, needs_short_ranks, plan_admission
from inference.queue import WORKER_ALIVE_S, JobQueue, lane_peek, long_run_fields, stats_read
from inference.settings import SchedulerSettings

RANKS_READ = 512  # short jobs whose ranks admission reads (the rest rank later: counted first, to be safe)
HOLD_MS = 30_000  # a held place outlives its request that long at most (a database lock can hold a commit)


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
    """Read the queue, its workers and its measurements, and plan the job (planning.plan_admission).

    Batch times come from the lane's measurements, anchored to the baseline the workers measured at start,
    or to `prior` (inference.batch_time.model_prior) before any did: never "nothing known, admit all".

    With `hold`, the job's place in its lane is held first, in the same round trip (Estimate.place: the
    caller releases it if it refuses the job; queueing the job gives it up): the jobs ahead, the queue's
    depth and the short ranks count the places other requests hold, so a burst of concurrent requests,
    each reading before the others have queued their jobs, is not admitted as if each came alone."""
    view, rank = admission_view(queue, settings, lane=lane, priority=priority, deadline_ms=deadline_ms,
                                prior=prior, hold=hold)  # fmt: skip
    return plan_admission(view, settings, lane=lane, deadline_ms=deadline_ms, rank=rank, tokens=tokens)


def admission_view(
    queue: JobQueue,
    settings: SchedulerSettings,
    *,
    lane: str,
    priority: str,
    deadline_ms: int,
    prior: Mapping[str, str] | None = None,
    hold: bool = False,
) -> tuple[AdmissionView, float]:
    """What the planner needs for a job of this lane, priority and deadline, and the job's rank."""
    now = queue.now()
    rank = admission_rank(now, deadline_ms, settings.head_start_ms(priority))
    pipe = queue.redis.pipeline(transaction=False)
    if hold:
        queue.hold_place_in(pipe, lane, token=uuid.uuid4().hex, rank=rank, hold_ms=HOLD_MS)
    for name in LANES:
        pipe.zcard(queue.lane_key(name))
        pipe.zcard(queue.held_key(name))
    pipe.zcount(queue.lane_key(lane), "-inf", rank)
    pipe.hgetall(queue.stats)
    for name in LANES:
        pipe.zrangebyscore(queue.lane_workers_key(name), now - WORKER_ALIVE_S, "+inf")
    pipe.hgetall(queue.busy_key)
    pipe.hgetall(queue.long_runs_key)
    queue.peek_in(pipe, Lane.LONG, 1)
    answers = pipe.execute()
    place = answers.pop(0) if hold else None
    queued_and_held, answers = answers[: 2 * len(LANES)], answers[2 * len(LANES) :]
    ahead, stats, answers = answers[0], answers[1], answers[2:]
    serving, (busy, long_runs, long_head) = dict(zip(LANES, answers[: len(LANES)], strict=True)), answers[len(LANES) :]
    # What others hold counts as waiting, and as ahead whatever its rank: of two requests whose reads cross,
    # the later reader must count the other (their ranks come from clocks read before either held a place).
    # This request's own place is itself, not a job ahead of it.
    held = {name: int(n) - (hold and name == lane) for name, n in zip(LANES, queued_and_held[1::2], strict=True)}
    depths = {name: int(queued) + held[name] for name, queued in zip(LANES, queued_and_held[::2], strict=True)}
    view = AdmissionView(
        now=now,
        depths=depths,
        ahead=int(ahead) + held[lane],
        measurements=stats_read({**(prior or {}), **stats}, now),
        serving=serving,
        busy={name: float(until) for name, until in busy.items()},
        long_runs={name: long_run_fields(run) for name, run in long_runs.items()},
        long_head=lane_peek(long_head),
        place=place,
    )
    if needs_short_ranks(view, lane):
        view = dataclasses.replace(view, short_ranks=_short_ranks(queue, place, depths[Lane.SHORT]))
    return view, rank


def _short_ranks(queue: JobQueue, place: str | None, waiting: int) -> list[float]:
    """The ranks of the short jobs waiting (a second round trip, only where the planner needs them).
    Places other requests hold, and jobs beyond RANKS_READ, count as ranked first."""
    pipe = queue.redis.pipeline(transaction=False)
    pipe.zrange(queue.lane_key(Lane.SHORT), 0, RANKS_READ - 1, withscores=True)
    pipe.zrange(queue.held_key(Lane.SHORT), 0, RANKS_READ - 1)
    ranks, held = pipe.execute()
    others_held = sum(1 for member in held if member != place)
    unread = waiting - len(ranks) - others_held
    return [-math.inf] * (others_held + max(0, unread)) + [score for _, score in ranks]
