"""Admission: the queue's snapshot of a pool (JobQueue.admission_view), planned by planning.plan_admission."""

from __future__ import annotations

from collections.abc import Mapping

from inference.planning import Estimate, admission_rank, plan_admission
from inference.settings import SchedulerSettings
from inference.store.queue import JobQueue


def admission_estimate(
    queue: JobQueue,
    settings: SchedulerSettings,
    *,
    lane: str,
    priority: str,
    deadline_ms: int,
    tokens: int = 0,
    max_new_tokens: int = 0,
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
    now = queue.now()
    rank = admission_rank(now, deadline_ms, settings.head_start_ms(priority))
    view = queue.admission_view(lane, now=now, rank=rank, prior=prior, hold=hold)
    return plan_admission(
        view, settings, lane=lane, deadline_ms=deadline_ms, rank=rank, tokens=tokens, max_new_tokens=max_new_tokens
    )
