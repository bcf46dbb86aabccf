"""Reads on jobs: lists, queue depth, the API representation."""

from datetime import timedelta

from django.db.models import Count, Q, QuerySet
from django.utils import timezone

from edgeportal.jobs.models import Job
from edgeportal.sources.models import Source


def job_list(*, limit: int = 50) -> QuerySet[Job]:
    return Job.objects.select_related("template", "source", "submitted_by", "latency")[:limit]


def queue_depth() -> dict[str, int | None]:
    """Jobs waiting and running now, and the share of the last hour's jobs the prompt cache answered.

    The job list polls this every 2 s per open page: two queries that each read one index range (the
    unfinished jobs, the last hour), never the whole table."""
    unfinished = [Job.Status.QUEUED, Job.Status.RUNNING]
    by_status = dict(
        Job.objects.filter(status__in=unfinished).values_list("status").annotate(jobs=Count("*")).order_by()
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
        "worker": job.worker or None,
        "cache_hit": job.cache_hit,
        "template_version": job.template_version,
        "latency": {
            "queue_wait_ms": latency.queue_wait_ms if latency else None,
            "window_wait_ms": latency.window_wait_ms if latency else None,
            "inference_ms": latency.inference_ms if latency else None,
            "total_ms": latency.total_ms if latency else None,
        },
    }
