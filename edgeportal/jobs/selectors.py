"""Reads on jobs: lists, queue depth, the API representation."""

from datetime import timedelta

import redis
from django.db.models import Count, Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from edgeportal.core.queueing import job_events
from edgeportal.jobs.models import Job
from edgeportal.sources.models import Source


def job_list(*, limit: int = 50) -> list[Job]:
    """The newest jobs; each running job says how many tokens it has made (job.tokens_made, None until known)."""
    # A job's output runs are shown on its page, not as jobs of their own.
    jobs = list(Job.objects.filter(parent=None).select_related("template", "source", "submitted_by", "latency")[:limit])
    running = [job.pk for job in jobs if job.status == Job.Status.RUNNING]
    try:
        made = job_events().tokens_made(running)
    except redis.RedisError:  # the list still shows; only the progress is missing
        made = {}
    for job in jobs:
        job.tokens_made = made.get(job.pk)
    return jobs


SPEAKERS = {"user": _("User"), "assistant": _("Assistant")}


def job_conversation(job: Job) -> list[tuple[str, str]]:
    """A chat's messages before its prompt (sent through the OpenAI-compatible API), as (who, text)."""
    return [(SPEAKERS.get(role, role), text) for role, text in (job.decoding or {}).get("turns", [])]


def queue_depth() -> dict[str, int | None]:
    """Jobs waiting and running now, and the share of the last hour's jobs the prompt cache answered.

    The job list polls this every 2 s per open page: two queries that each read one index range (the
    unfinished jobs, the last hour), never the whole table."""
    unfinished = [Job.Status.QUEUED, Job.Status.RUNNING]
    by_status = dict(
        Job.objects.filter(status__in=unfinished, has_outputs=False)
        .values_list("status")
        .annotate(jobs=Count("*"))
        .order_by()
    )
    hour_ago = timezone.now() - timedelta(hours=1)
    recent = Job.objects.filter(created_at__gte=hour_ago).aggregate(
        jobs=Count("*"), hits=Count("cache_hit", filter=Q(cache_hit=True))
    )
    hit_rate = round(100 * recent["hits"] / recent["jobs"]) if recent["jobs"] else None
    return {
        "queued": by_status.get(Job.Status.QUEUED, 0),
        "running": by_status.get(Job.Status.RUNNING, 0),
        "cache_hit_rate": hit_rate,
    }


def job_for_source(*, source: Source, job_id: int) -> Job | None:
    return Job.objects.select_related("latency", "batch").filter(pk=job_id, source=source).first()


def _iso(value):
    return value.isoformat() if value else None


def cache_hit_value(job: Job) -> bool | str:
    """The API's cache_hit: "semantic" where a close request's answer was taken (with its similarity beside it),
    else whether the prompt cache or an identical job's run answered. Both are true to a client that asks."""
    return "semantic" if job.cache_similarity is not None else job.cache_hit


def job_as_json(job: Job) -> dict:
    latency = getattr(job, "latency", None)
    return {
        "id": job.pk,
        "status": job.status,
        "priority": job.priority,
        "lane": job.lane,
        "model": job.model or None,
        "deadline_at": _iso(job.deadline_at),
        "output": job.output if job.status == Job.Status.DONE else None,
        "error": job.error or None,
        "created_at": _iso(job.created_at),
        "finished_at": _iso(job.finished_at),
        "batch_id": job.batch.batch_id if job.batch else None,
        "batch_size": job.batch.size if job.batch else None,
        "prompt_tokens": job.prompt_tokens,
        "output_tokens": job.output_tokens,
        "finish_reason": job.finish_reason or None,
        "worker": job.worker or None,
        "cache_hit": cache_hit_value(job),
        "cache_similarity": job.cache_similarity,
        "template_version": job.template_version,
        "latency": {
            "queue_wait_ms": latency.queue_wait_ms if latency else None,
            "window_wait_ms": latency.window_wait_ms if latency else None,
            "inference_ms": latency.inference_ms if latency else None,
            "first_token_ms": latency.first_token_ms if latency else None,
            "rerank_ms": latency.rerank_ms if latency else None,
            "total_ms": latency.total_ms if latency else None,
        },
        "choice": job.choice or None,  # a job of several candidates: each one's scores and the chosen one
        "outputs": [output_as_json(output) for output in job.outputs.all()] if job.has_outputs else None,
    }


def output_as_json(output) -> dict:
    """One output of a job: a JSON output's value only when it is valid, never an invalid one as valid."""
    final = output.is_final
    return {
        "name": output.name,
        "status": output.status,
        "language": output.language,
        "language_detected": output.language_detected or None,
        "format": output.format,
        "valid": output.valid,
        "text": output.text if final and output.text else None,
        "json": output.data if output.valid else None,
        "error": output.error or None,
        "attempts": output.attempts,
        "output_tokens": output.output_tokens,
        "latency_ms": output.latency_ms,
        "finished_at": _iso(output.finished_at),
    }
