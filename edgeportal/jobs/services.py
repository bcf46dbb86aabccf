"""Writes on jobs: submit, mark running, record a finished batch, fail, re-queue what Redis lost."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import redis
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from edgeportal.jobs.models import Job
from edgeportal.jobs.queueing import get_queue
from edgeportal.latency.models import BatchRecord, JobLatency
from edgeportal.prompts.models import PromptTemplate
from edgeportal.prompts.rendering import RenderError, check_text, render
from edgeportal.sources.models import Source
from inference.queue import QueuedJob
from inference.worker import BatchRun

log = logging.getLogger(__name__)


class JobRejected(Exception):
    """Bad input: the message is shown to the person or machine that sent it."""

    def __init__(self, message: str, *, code: str, field: str | None = None, status: int = 400):
        super().__init__(message)
        self.message = message
        self.code = code
        self.field = field
        self.status = status


class QueueUnavailable(JobRejected):
    def __init__(self):
        super().__init__(
            "The job queue (Redis) is not reachable; nothing was stored. Try again shortly.",
            code="queue_unavailable",
            status=503,
        )


def _at(epoch_seconds: float) -> datetime:
    return datetime.fromtimestamp(epoch_seconds, tz=UTC)


def _queued_job(job: Job) -> QueuedJob:
    return QueuedJob(
        job_id=job.pk, prompt=job.prompt, system_prompt=job.system_prompt, max_new_tokens=job.max_new_tokens
    )


def _enqueue(job: Job) -> None:
    try:
        get_queue().enqueue(_queued_job(job))
    except redis.RedisError:
        # The job stays queued in the database; the periodic sweep puts it on Redis when it is back.
        log.exception("could not enqueue job %s; the sweep will retry", job.pk)


def job_submit(
    *,
    prompt: str | None = None,
    template_slug: str | None = None,
    variables: object = None,
    source: Source | None = None,
    user=None,
    allow_free_prompt: bool,
) -> Job:
    """Validate, render, store as queued and queue it once the row is committed."""
    template = None
    if template_slug is not None and prompt is not None:
        raise JobRejected("Send either a template or a prompt, not both.", code="invalid", field="prompt")
    if template_slug is not None:
        if not isinstance(template_slug, str) or not template_slug.strip():
            raise JobRejected("template must be a template slug.", code="invalid", field="template")
        template = PromptTemplate.objects.filter(slug=template_slug.strip()).first()
        if template is None:
            raise JobRejected(f"Unknown template {template_slug!r}.", code="unknown_template", field="template")
        try:
            text = render(template.body, variables or {}, max_value_chars=settings.EDGE_MAX_PROMPT_CHARS)
        except RenderError as error:
            raise JobRejected(str(error), code="invalid_variables", field=error.field or "variables") from None
    elif prompt is not None:
        if not allow_free_prompt:
            raise JobRejected(
                "This sender may only use prompt templates.", code="forbidden", field="prompt", status=403
            )
        if not isinstance(prompt, str):
            raise JobRejected("prompt must be text.", code="invalid", field="prompt")
        if variables:
            raise JobRejected("variables are only used with a template.", code="invalid", field="variables")
        text = prompt
    else:
        raise JobRejected("Send a template with its variables, or a prompt.", code="missing", field="template")

    text = text.strip()
    if not text:
        raise JobRejected("The prompt is empty.", code="empty_prompt", field="prompt")
    try:
        check_text(text, "prompt")
    except RenderError as error:
        raise JobRejected(str(error), code="invalid_text", field="prompt") from None
    limit = settings.EDGE_MAX_PROMPT_CHARS
    if len(text) > limit:
        raise JobRejected(
            f"The prompt has {len(text)} characters; the limit is {limit}.", code="prompt_too_long", field="prompt"
        )

    queue = get_queue()
    try:
        queue.ping()  # refuse early rather than store a job that cannot be queued
    except redis.RedisError:
        raise QueueUnavailable() from None

    with transaction.atomic():
        job = Job.objects.create(
            source=source,
            submitted_by=user if user is not None and user.is_authenticated else None,
            template=template,
            variables=variables if template else {},
            prompt=text,
            system_prompt=template.system_prompt if template else "",
            max_new_tokens=template.max_new_tokens if template else settings.EDGE_DEFAULT_MAX_NEW_TOKENS,
        )
        # A worker must never read a job id whose row is not committed yet.
        transaction.on_commit(lambda: _enqueue(job))
    return job


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


def _latency(job: Job, *, batch_size: int | None = None, inference_ms: float | None = None) -> JobLatency:
    return JobLatency(
        job=job,
        batch=job.batch,
        status=job.status,
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
        inference_ms=batch.inference_ms,
        window_ms=batch.settings.window_ms,
        max_batch_size=batch.settings.max_batch_size,
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
    JobLatency.objects.bulk_create(
        [_latency(job, batch_size=size, inference_ms=batch.inference_ms) for job in open_jobs]
    )
    return record


@transaction.atomic
def jobs_fail(*, job_ids: list[int], reason: str) -> int:
    """Fail jobs that never got a result (a job that kept killing workers); each still gets a latency record."""
    jobs = list(Job.objects.select_for_update().filter(pk__in=job_ids).exclude(status__in=Job.FINISHED))
    now = timezone.now()
    for job in jobs:
        job.status, job.error, job.finished_at = Job.Status.FAILED, reason, now
    Job.objects.bulk_update(jobs, ["status", "error", "finished_at"])
    JobLatency.objects.bulk_create([_latency(job) for job in jobs])
    return len(jobs)


def jobs_requeue_lost(*, grace_s: float, limit: int = 1000) -> int:
    """Put back on Redis the unfinished jobs it no longer holds (Redis keeps nothing on disk)."""
    queue = get_queue()
    live = queue.live_job_ids()
    cutoff = timezone.now() - timedelta(seconds=grace_s)
    lost = list(
        Job.objects.filter(status__in=[Job.Status.QUEUED, Job.Status.RUNNING], created_at__lt=cutoff)
        .exclude(pk__in=live)
        .order_by("created_at")[:limit]
    )
    for job in lost:
        Job.objects.filter(pk=job.pk, status=Job.Status.RUNNING).update(status=Job.Status.QUEUED)
        queue.enqueue(_queued_job(job))
    if lost:
        log.warning("re-queued %d job(s) that Redis no longer held", len(lost))
    return len(lost)
