"""Writes on jobs after entry: queue, mark running, record a finished batch, fail, answer followers, re-queue."""

from __future__ import annotations

import logging
from dataclasses import asdict
from datetime import UTC, datetime, timedelta

import redis
from django.db import transaction
from django.utils import timezone

from edgeportal.jobs.models import Job
from edgeportal.jobs.queueing import get_queue, scheduler_settings
from edgeportal.latency.models import BatchRecord, JobLatency
from edgeportal.monitoring import metrics
from edgeportal.prompts import cache
from inference.queue import QueuedJob
from inference.scheduler import SchedulerSettings
from inference.worker import BatchRun

log = logging.getLogger(__name__)


def _at(epoch_seconds: float) -> datetime:
    return datetime.fromtimestamp(epoch_seconds, tz=UTC)


def _queued_job(job: Job, scheduler: SchedulerSettings) -> QueuedJob:
    return QueuedJob(
        job_id=job.pk,
        prompt=job.prompt,
        system_prompt=job.system_prompt,
        max_new_tokens=job.max_new_tokens,
        prompt_tokens=job.prompt_tokens or 0,
        lane=job.lane,
        priority=job.priority,
        head_start_ms=scheduler.head_start_ms(job.priority),
    )


def _ms_left(job: Job, scheduler: SchedulerSettings) -> float:
    if job.deadline_at is None:  # queued before jobs had deadlines
        return scheduler.default_deadline_ms
    return (job.deadline_at - timezone.now()).total_seconds() * 1000


def enqueue(job: Job, scheduler: SchedulerSettings) -> None:
    """Put a committed job on its lane, ranked with these settings' head start for its priority."""
    try:
        get_queue().enqueue(_queued_job(job, scheduler), deadline_in_ms=_ms_left(job, scheduler))
    except redis.RedisError:
        # The job stays queued in the database; the periodic sweep puts it on Redis when it is back.
        log.exception("could not enqueue job %s; the sweep will retry", job.pk)


@transaction.atomic
def jobs_mark_running(*, batch: BatchRun) -> None:
    started = _at(batch.inference_started_at)
    for queued in batch.jobs:
        Job.objects.filter(pk=queued.job_id, status__in=[Job.Status.QUEUED, Job.Status.RUNNING]).update(
            status=Job.Status.RUNNING,
            picked_at=_at(queued.picked_at),
            inference_started_at=started,
            worker=batch.worker,
        )


def _ms(later: datetime | None, earlier: datetime | None) -> float | None:
    if later is None or earlier is None:
        return None
    return max(0.0, (later - earlier).total_seconds() * 1000)


def latency_for(job: Job, *, batch_size: int | None = None, inference_ms: float | None = None) -> JobLatency:
    """The latency record of a finished job (unsaved); stages it never reached stay empty."""
    return JobLatency(
        job=job,
        batch=job.batch,
        status=job.status,
        cache_hit=job.cache_hit,
        template_id=job.template_id,
        source_id=job.source_id,
        lane=job.lane,
        priority=job.priority,
        deadline_ms=_ms(job.deadline_at, job.created_at),
        queue_wait_ms=_ms(job.picked_at, job.created_at),
        window_wait_ms=_ms(job.inference_started_at, job.picked_at),
        inference_ms=inference_ms,
        total_ms=_ms(job.finished_at, job.created_at),
        batch_size=batch_size,
        prompt_tokens=job.prompt_tokens,
        output_tokens=job.output_tokens,
        worker=job.worker,
    )


@transaction.atomic
def batch_record(*, batch: BatchRun) -> BatchRecord | None:
    """Store the batch, its jobs' outputs or failures, and their latencies.

    A job finished earlier (a replayed batch) keeps its first result; if none is left open, nothing is stored.
    """
    results = {r.job_id: r for r in batch.results}
    open_jobs = list(
        Job.objects.select_for_update().filter(pk__in=[*results, *batch.failures]).exclude(status__in=Job.FINISHED)
    )
    if not open_jobs:
        return None
    size = len(batch.jobs)
    record = BatchRecord.objects.create(
        batch_id=batch.batch_id,
        worker=batch.worker,
        size=size,
        prompt_tokens=sum(r.prompt_tokens for r in batch.results),
        padded_tokens=batch.padded_tokens,
        output_tokens=sum(r.new_tokens for r in batch.results),
        window_opened_at=_at(batch.window_opened_at),
        inference_started_at=_at(batch.inference_started_at),
        inference_ms=batch.model_ms,
        paused_ms=batch.paused_ms,
        lane=batch.lane,
        window_ms=batch.window_ms,
        max_batch_size=batch.settings.max_batch_size,
        settings=asdict(batch.settings),
    )
    picked = {job.job_id: job.picked_at for job in batch.jobs}
    now = timezone.now()
    for job in open_jobs:
        result = results.get(job.pk)
        job.status = Job.Status.DONE if result else Job.Status.FAILED
        job.output = result.text if result else ""
        job.error = "" if result else batch.failures[job.pk]
        job.prompt_tokens = result.prompt_tokens if result else None
        job.output_tokens = result.new_tokens if result else None
        job.batch = record
        job.worker = batch.worker
        job.picked_at = _at(picked[job.pk])
        job.inference_started_at = _at(batch.inference_started_at)
        job.inference_ended_at = _at(batch.inference_ended_at)
        job.finished_at = now
    Job.objects.bulk_update(
        open_jobs,
        [
            "status", "output", "error", "prompt_tokens", "output_tokens", "batch", "worker",
            "picked_at", "inference_started_at", "inference_ended_at", "finished_at",
        ],
    )  # fmt: skip
    latencies = JobLatency.objects.bulk_create(
        [latency_for(job, batch_size=size, inference_ms=batch.inference_ms) for job in open_jobs]
    )
    metrics.jobs_finished(latencies)
    _leaders_finished(open_jobs)
    return record


@transaction.atomic
def jobs_fail(*, job_ids: list[int], reason: str) -> int:
    """Fail jobs that never got a result (a job that kept killing workers); each still gets a latency record."""
    jobs = list(Job.objects.select_for_update().filter(pk__in=job_ids).exclude(status__in=Job.FINISHED))
    now = timezone.now()
    for job in jobs:
        job.status, job.error, job.finished_at = Job.Status.FAILED, reason, now
    Job.objects.bulk_update(jobs, ["status", "error", "finished_at"])
    metrics.jobs_finished(JobLatency.objects.bulk_create([latency_for(job) for job in jobs]))
    _leaders_finished(jobs)
    return len(jobs)


@transaction.atomic
def jobs_expire(*, reasons: dict[int, str]) -> int:
    """End jobs that could not meet their deadline, without running them; each gets a latency record."""
    jobs = list(Job.objects.select_for_update().filter(pk__in=list(reasons)).exclude(status__in=Job.FINISHED))
    now = timezone.now()
    for job in jobs:
        job.status, job.error, job.finished_at = Job.Status.EXPIRED, reasons[job.pk], now
    Job.objects.bulk_update(jobs, ["status", "error", "finished_at"])
    metrics.jobs_finished(JobLatency.objects.bulk_create([latency_for(job) for job in jobs]))
    _leaders_finished(jobs)
    return len(jobs)


def _leaders_finished(jobs: list[Job]) -> None:
    """Answer the jobs that waited for these; once committed, cache the good results and free the prompts."""
    leaders = [job for job in jobs if job.cache_key]
    if not leaders:
        return
    followers_resolve(leader_ids=[job.pk for job in leaders])

    def publish():
        for job in leaders:
            if job.status == Job.Status.DONE:  # never cache a failure
                result = cache.CachedResult(job.output, job.prompt_tokens or 0, job.output_tokens or 0, job.pk)
                cache.cache_put(job.cache_key, result)
            cache.flight_release(job.cache_key, job.pk)

    transaction.on_commit(publish)


@transaction.atomic
def followers_resolve(*, leader_ids: list[int]) -> int:
    """Finish the jobs that waited for identical, now finished jobs: the leader's output, or its failure."""
    leaders = {job.pk: job for job in Job.objects.filter(pk__in=leader_ids, status__in=Job.FINISHED)}
    followers = list(Job.objects.select_for_update().filter(follows__in=list(leaders)).exclude(status__in=Job.FINISHED))
    now = timezone.now()
    for job in followers:
        leader = leaders[job.follows_id]
        job.finished_at = now
        if leader.status == Job.Status.DONE:
            job.status, job.cache_hit, job.output = Job.Status.DONE, True, leader.output
            job.prompt_tokens, job.output_tokens = leader.prompt_tokens, leader.output_tokens
        elif leader.status == Job.Status.EXPIRED:
            job.status = Job.Status.EXPIRED
            job.error = f"The identical job {leader.pk} it waited for {leader.error}"
        else:
            job.status = Job.Status.FAILED
            job.error = f"The identical job {leader.pk} it waited for failed: {leader.error}"
    Job.objects.bulk_update(
        followers, ["status", "cache_hit", "output", "prompt_tokens", "output_tokens", "error", "finished_at"]
    )
    metrics.jobs_finished(JobLatency.objects.bulk_create([latency_for(job) for job in followers]))
    return len(followers)


def jobs_requeue_lost(*, grace_s: float, limit: int = 1000) -> int:
    """Put back on Redis the unfinished jobs it no longer holds (Redis keeps nothing on disk); expire
    those whose deadline passed meanwhile, which no worker's expiry timer can see any more.

    The database is read before Redis: a job committed meanwhile is queued by its own request, which that
    read of Redis sees. Read the other way round, jobs whose requests a table lock held (committed with an
    old created_at) looked lost while the sweep waited for the same lock, and were queued twice."""
    queue = get_queue()
    now = timezone.now()
    cutoff = now - timedelta(seconds=grace_s)
    unfinished = Job.objects.filter(status__in=[Job.Status.QUEUED, Job.Status.RUNNING], created_at__lt=cutoff)
    # Followers are never queued: they wait for their leader, or are answered if it already finished.
    followers_resolve(leader_ids=list(unfinished.filter(follows__isnull=False).values_list("follows_id", flat=True)))
    candidates = list(unfinished.filter(follows__isnull=True).values_list("pk", flat=True))
    live = queue.live_job_ids()
    # Still unfinished: a worker may have stored one between the two reads.
    lost = unfinished.filter(pk__in=[pk for pk in candidates if pk not in live])
    overdue = list(lost.filter(deadline_at__lte=now).values_list("pk", flat=True)[:limit])
    if overdue:
        jobs_expire(reasons=dict.fromkeys(overdue, "expired: its deadline passed while the queue had lost it"))
    lost = list(lost.exclude(pk__in=overdue).order_by("created_at")[:limit])
    scheduler = scheduler_settings()
    for job in lost:
        Job.objects.filter(pk=job.pk, status=Job.Status.RUNNING).update(status=Job.Status.QUEUED)
        queue.enqueue(_queued_job(job, scheduler), deadline_in_ms=_ms_left(job, scheduler))
    if lost:
        log.warning("re-queued %d job(s) that Redis no longer held", len(lost))
    return len(lost)
