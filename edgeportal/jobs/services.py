"""Writes on jobs after entry: queue, mark running, record a finished batch, fail, single flight, re-queue."""

from __future__ import annotations

import logging
from dataclasses import asdict
from datetime import UTC, datetime, timedelta

import redis
from django.db import transaction
from django.utils import timezone

from edgeportal.core import metrics
from edgeportal.core.queueing import get_queue, job_events, pool_of, pools_known, queue_owner, scheduler_settings
from edgeportal.jobs.hooks import hook
from edgeportal.jobs.models import Job
from edgeportal.latency.models import BatchRecord, JobLatency
from edgeportal.prompts import cache
from inference.batch import BatchRun
from inference.decoding import Decoding
from inference.planning import expiry_reason
from inference.settings import SchedulerSettings
from inference.store.queue import WORKER_ALIVE_S, JobQueue, QueuedJob

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
        cache_key=job.cache_key,
        owner=queue_owner(source_id=job.source_id, user_id=job.submitted_by_id),
        decoding=Decoding.from_dict(job.decoding),
    )


def job_queue(job: Job) -> JobQueue:
    """The queue of the pool the job was admitted to."""
    return get_queue(pool_of(job.pool))


def _ms_left(job: Job, scheduler: SchedulerSettings) -> float:
    if job.deadline_at is None:  # queued before jobs had deadlines
        return scheduler.default_deadline_ms
    return (job.deadline_at - timezone.now()).total_seconds() * 1000


def enqueue(job: Job, scheduler: SchedulerSettings, *, place: str = "") -> None:
    """Put a committed job on its lane, ranked with these settings' head start for its priority (giving up
    the place admission held for it)."""
    try:
        queued = _queued_job(job, scheduler)
        queued.place = place
        job_queue(job).enqueue(queued, deadline_in_ms=_ms_left(job, scheduler))
    except redis.RedisError:
        # The job stays queued in the database; the periodic sweep puts it on Redis when it is back.
        log.exception("could not enqueue job %s; the sweep will retry", job.pk)


def job_queue_new(job: Job, scheduler: SchedulerSettings, *, place: str = "") -> None:
    """Once a new job's row is committed: queue it like any job (its own lane rank, deadline and priority),
    then let an identical job that finished meanwhile answer it (see flight_join)."""
    enqueue(job, scheduler, place=place)
    if job.cache_key:
        try:
            flight_join(job=job)
        except Exception:  # the job is queued: it runs itself
            log.exception("single flight: could not look for an identical job that answers job %s", job.pk)


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
    # A job whose outputs run as jobs of their own runs once the first of them does.
    runs = [queued.job_id for queued in batch.jobs]
    Job.objects.filter(runs__pk__in=runs, status=Job.Status.QUEUED).update(status=Job.Status.RUNNING)


def _ms(later: datetime | None, earlier: datetime | None) -> float | None:
    if later is None or earlier is None:
        return None
    return max(0.0, (later - earlier).total_seconds() * 1000)


def latency_records(jobs: list[Job], **stages) -> list[JobLatency]:
    """Store and count the latency records of these finished jobs. A run of a job's output has none of its own:
    its request gets one when its last output is final (outputs.services.job_finish_if_final), so history,
    the dashboard and the metrics count each request once, end to end."""
    records = JobLatency.objects.bulk_create([latency_for(job, **stages) for job in jobs if job.parent_id is None])
    metrics.jobs_finished(records)
    return records


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
    # A batch whose kept outputs are stored again after a crash may come back in parts (its jobs taken in
    # several windows): each part finds the record the first one made.
    record, created = BatchRecord.objects.get_or_create(
        batch_id=batch.batch_id,
        defaults={
            "worker": batch.worker,
            "size": size,
            "prompt_tokens": sum(r.prompt_tokens for r in batch.results),
            "padded_tokens": batch.padded_tokens,
            "output_tokens": sum(r.new_tokens for r in batch.results),
            "window_opened_at": _at(batch.window_opened_at),
            "inference_started_at": _at(batch.inference_started_at),
            "inference_ms": batch.model_ms,
            "paused_ms": batch.paused_ms,
            "lane": batch.lane,
            "window_ms": batch.window_ms,
            "max_batch_size": batch.settings.max_batch_size,
            "settings": asdict(batch.settings),
        },
    )
    picked = {job.job_id: job.picked_at for job in batch.jobs}
    now = timezone.now()
    for job in open_jobs:
        result = results.get(job.pk)
        copied = job.pk in batch.copies and result is not None  # answered by an identical job's run
        job.follows_id = batch.copies.get(job.pk) if copied else None
        cached = result.cached if result else None  # a close request's answer (inference.semantic_cache)
        job.cache_hit = copied or cached is not None
        job.cache_similarity = cached["similarity"] if cached else None
        job.status = Job.Status.DONE if result else Job.Status.FAILED
        job.output = result.text if result else ""
        job.error = "" if result else batch.failures[job.pk]
        job.prompt_tokens = result.prompt_tokens if result else None
        job.output_tokens = result.new_tokens if result else None
        job.finish_reason = result.finish_reason if result else ""
        job.choice = (result.choice or {}) if result else {}
        job.batch = record
        job.worker = batch.worker
        job.picked_at = _at(picked[job.pk])
        job.inference_started_at = _at(batch.inference_started_at)
        job.inference_ended_at = _at(batch.inference_ended_at)
        job.finished_at = now
    Job.objects.bulk_update(
        open_jobs,
        [
            "status", "output", "error", "prompt_tokens", "output_tokens", "finish_reason", "batch", "worker",
            "picked_at", "inference_started_at", "inference_ended_at", "finished_at", "cache_hit", "cache_similarity",
            "follows", "choice",
        ],
    )  # fmt: skip
    if created:
        metrics.batch_stored(size)  # once per batch, whichever of its jobs (requests or runs) it held
    requests = [job for job in open_jobs if job.parent_id is None]  # runs: see latency_records
    latencies = [latency_for(job, batch_size=size, inference_ms=batch.inference_ms) for job in requests]
    for latency in latencies:
        latency.rerank_ms = latency.job.choice.get("rerank_ms")
    if batch.first_token_at is not None:
        for latency in latencies:
            latency.first_token_ms = _ms(_at(batch.first_token_at), latency.job.created_at)
    latencies = JobLatency.objects.bulk_create(latencies)
    metrics.jobs_finished(latencies)
    jobs_ended(open_jobs)  # first: a waiting request need not wait for the cache and single flight below
    _results_published(open_jobs)
    return record


@transaction.atomic
def jobs_fail(*, job_ids: list[int], reason: str) -> int:
    """Fail jobs that never got a result (a job that kept killing workers); each still gets a latency record."""
    jobs = list(Job.objects.select_for_update().filter(pk__in=job_ids).exclude(status__in=Job.FINISHED))
    now = timezone.now()
    for job in jobs:
        job.status, job.error, job.finished_at = Job.Status.FAILED, reason, now
    Job.objects.bulk_update(jobs, ["status", "error", "finished_at"])
    latency_records(jobs)
    jobs_ended(jobs)
    return len(jobs)


@transaction.atomic
def jobs_expire(*, reasons: dict[int, str]) -> int:
    """End jobs that could not meet their deadline, without running them; each gets a latency record."""
    jobs = list(Job.objects.select_for_update().filter(pk__in=list(reasons)).exclude(status__in=Job.FINISHED))
    now = timezone.now()
    for job in jobs:
        job.status, job.error, job.finished_at = Job.Status.EXPIRED, reasons[job.pk], now
    Job.objects.bulk_update(jobs, ["status", "error", "finished_at"])
    latency_records(jobs)
    jobs_ended(jobs)
    return len(jobs)


def jobs_ended(jobs: list[Job]) -> None:
    """Once these jobs' rows are committed, tell whoever waits on them (inference.store.job_events): a request of
    the OpenAI-compatible API reads the job then, instead of polling the database."""
    # outputs_advance: runs of a job's outputs checked, and what follows them started, in this transaction
    hook("runs_ended")(runs=jobs)
    statuses = {job.pk: job.status for job in jobs}
    if statuses:
        # robust: a reader that misses it still ends at its job's deadline; the job itself is stored.
        transaction.on_commit(lambda: job_events().publish_end(statuses), robust=True)


def _results_published(jobs: list[Job]) -> None:
    """Once committed, the done results are cached and answer the identical jobs still waiting (single flight).
    A job that failed or expired ends alone: the identical jobs keep their own deadlines and run themselves."""
    # One job per group, the one that ran rather than a copy of it in its batch (copies sort first, get replaced).
    # A semantic hit's answer was made for another request: it is neither the exact answer to this one's prompt
    # nor an identical job's (turning the semantic cache off must stop its answers).
    ran_last = sorted(jobs, key=lambda job: not job.cache_hit)
    done = {
        job.cache_key: job
        for job in ran_last
        if job.cache_key and job.status == Job.Status.DONE and job.cache_similarity is None
    }
    if not done:
        return

    def publish():
        for job in done.values():
            result = cache.CachedResult(
                job.output, job.prompt_tokens or 0, job.output_tokens or 0, job.pk, job.finish_reason
            )
            cache.cache_put(job.cache_key, result)
        flight_answer(answered_by=list(done.values()))

    # robust: a lost answer costs a second run of the model, never the batch that is already stored.
    transaction.on_commit(publish, robust=True)


def flight_answer(*, answered_by: list[Job]) -> int:
    """The first job of a flight group (identical jobs: the same cache key) to finish done answers the
    others that still wait in their lanes: done, a cache hit, with its output. Call it after that job is
    committed: an identical job committed later finds it instead (flight_join), so one of the two always
    sees the other.

    Each is taken out of Redis first (atomically): a job a worker already leased runs, and stores its
    own result (batch_record skips finished jobs, so nothing is stored twice)."""
    leaders = {job.cache_key: job for job in answered_by if job.cache_key and job.status == Job.Status.DONE}
    if not leaders:
        return 0
    waiting = (
        Job.objects.filter(cache_key__in=list(leaders), status__in=[Job.Status.QUEUED, Job.Status.RUNNING])
        .exclude(pk__in=[job.pk for job in answered_by])
        .order_by()
    )
    groups, pools = {}, {}
    for job_id, key, pool in waiting.values_list("pk", "cache_key", "pool"):
        groups[job_id] = key
        pools.setdefault(pool, []).append(job_id)
    withdrawn = [job_id for pool, ids in pools.items() for job_id in get_queue(pool_of(pool)).withdraw(ids)]
    if not withdrawn:
        return 0
    return _answer_from(answers={job_id: leaders[groups[job_id]] for job_id in withdrawn})


def flight_join(*, job: Job) -> bool:
    """A new job, just queued: if an identical job finished done since it was created (its answer went
    out before this job was committed), that result answers it, unless a worker already leased it."""
    leader = (
        Job.objects.filter(cache_key=job.cache_key, status=Job.Status.DONE, finished_at__gte=job.created_at)
        .exclude(pk=job.pk)
        .order_by("finished_at")
        .first()
    )
    if leader is None or not job_queue(job).withdraw([job.pk]):
        return False
    return _answer_from(answers={job.pk: leader}) == 1


@transaction.atomic
def _answer_from(*, answers: dict[int, Job]) -> int:
    """Finish each job with the output of the identical done job it maps to. Nothing of that other job but
    its output is copied: a job from another source never learns of it."""
    jobs = list(Job.objects.select_for_update().filter(pk__in=list(answers)).exclude(status__in=Job.FINISHED))
    now = timezone.now()
    for job in jobs:
        leader = answers[job.pk]
        job.status, job.cache_hit, job.output, job.error = Job.Status.DONE, True, leader.output, ""
        job.prompt_tokens, job.output_tokens = leader.prompt_tokens, leader.output_tokens
        job.finish_reason, job.follows_id, job.finished_at = leader.finish_reason, leader.pk, now
    Job.objects.bulk_update(
        jobs,
        ["status", "cache_hit", "output", "error", "prompt_tokens", "output_tokens", "finish_reason", "follows",
         "finished_at"],
    )  # fmt: skip
    latency_records(jobs)
    jobs_ended(jobs)
    return len(jobs)


PRUNE_CHUNK = 500  # jobs deleted per transaction: a first prune over months of jobs never holds one long lock


def jobs_prune(*, older_than_days: int, now: datetime | None = None) -> int:
    """Delete the finished jobs created before the retention, in chunks; returns how many.

    Jobs still queued or running stay, however old. A deleted job's latency record stays (its job becomes
    empty) until the latency roll-up folds it into hourly aggregates, and so does its batch record; a job
    that an identical one answered keeps its output when that one goes."""
    cutoff = (now or timezone.now()) - timedelta(days=older_than_days)
    old = Job.objects.filter(status__in=Job.FINISHED, created_at__lt=cutoff).order_by()
    deleted = 0
    while ids := list(old.values_list("pk", flat=True)[:PRUNE_CHUNK]):
        with transaction.atomic():
            Job.objects.filter(pk__in=ids).delete()
        deleted += len(ids)
    if deleted:
        log.info("deleted %d finished jobs created before %s", deleted, cutoff.isoformat())
    return deleted


def _expire_unserved(queue: JobQueue) -> None:
    """In a lane of this pool that no live worker serves, no expiry timer runs: expire here the jobs whose
    deadline passed (taken out of Redis atomically first, so a worker that starts meanwhile cannot also take
    them), after putting back the leases of workers that died."""
    if unserved := queue.lanes_without_workers(alive_s=WORKER_ALIVE_S):
        queue.reclaim()  # jobs leased by a worker that died: back in their lane once their lease ran out
        expired = queue.expire_due(dict.fromkeys(unserved, 0))
        if expired:
            now_ms = queue.now() * 1000
            jobs_expire(reasons={job.job_id: expiry_reason(job, now_ms) for job in expired})
            log.warning("expired %d overdue job(s) in lanes no worker serves: %s", len(expired), unserved)


def jobs_requeue_lost(*, grace_s: float, limit: int = 1000) -> int:
    """Put back on Redis the unfinished jobs it no longer holds (Redis keeps nothing on disk); expire
    those whose deadline passed meanwhile, which no worker's expiry timer can see any more. Returns how
    many it put back. Every pool is swept, and a job goes back to the pool it was admitted to.

    The database is read before Redis: a job committed meanwhile is queued by its own request, which that
    read of Redis sees. Read the other way round, jobs whose requests a table lock held (committed with an
    old created_at) looked lost while the sweep waited for the same lock, and were queued twice."""
    for pool in pools_known():
        _expire_unserved(get_queue(pool))
    now = timezone.now()
    cutoff = now - timedelta(seconds=grace_s)
    hook("outputs_settle")(grace_s=grace_s)  # edgeportal.outputs.services.jobs_with_outputs_settle
    unfinished = Job.objects.filter(
        status__in=[Job.Status.QUEUED, Job.Status.RUNNING], created_at__lt=cutoff, has_outputs=False
    )  # a job with outputs is never on Redis: its runs are
    candidates = list(unfinished.values_list("pk", flat=True))
    # Which pools, read after the database too: a job committed meanwhile may be its pool's first.
    live = {job_id for pool in pools_known() for job_id in get_queue(pool).live_job_ids()}
    # Still unfinished: a worker may have stored one between the two reads.
    lost = unfinished.filter(pk__in=[pk for pk in candidates if pk not in live])
    overdue = list(lost.filter(deadline_at__lte=now).values_list("pk", flat=True)[:limit])
    if overdue:
        jobs_expire(reasons=dict.fromkeys(overdue, "expired: its deadline passed while the queue had lost it"))
    lost = list(lost.exclude(pk__in=overdue).order_by("created_at")[:limit])
    scheduler = scheduler_settings()
    for job in lost:
        Job.objects.filter(pk=job.pk, status=Job.Status.RUNNING).update(status=Job.Status.QUEUED)
        job_queue(job).enqueue(_queued_job(job, scheduler), deadline_in_ms=_ms_left(job, scheduler))
    if lost:
        log.warning("re-queued %d job(s) that Redis no longer held", len(lost))
    return len(lost)
