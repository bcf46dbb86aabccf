"""Celery tasks of the jobs app: thin shells around services."""

from collections import Counter

from celery import shared_task
from django.conf import settings

from edgeportal.core import metrics
from edgeportal.core.queueing import get_queue, pools_known
from edgeportal.jobs.record_retention import old_records_prune
from edgeportal.jobs.refusals import refusals_flush
from edgeportal.jobs.services import jobs_prune, jobs_requeue_lost
from edgeportal.latency.services import latency_roll_up


@shared_task
def requeue_lost_jobs() -> int:
    depths: Counter[str] = Counter()
    for pool in pools_known():
        queue = get_queue(pool)
        queue.recount_owners()  # fair share's counts heal here if they ever drifted
        queue.forget_dead_workers()  # what workers that died (kill -9, a lost host) left in Redis
        depths.update(queue.lane_depths())
    metrics.queue_depths_seen(dict(depths))  # the dashboard's trend has depths while nobody watches
    return jobs_requeue_lost(grace_s=settings.EDGE_SWEEP_GRACE_S)


@shared_task
def prune_old_jobs() -> int:
    return jobs_prune(older_than_days=settings.EDGE_JOB_RETENTION_DAYS)


@shared_task
def store_refusals() -> int:
    return refusals_flush()


# Latency's retention: here, as it also prunes jobs' refusals (latency sits below jobs). Its name is the one it
# had in edgeportal.latency.tasks, which beat's schedule and running workers know.
@shared_task(name="edgeportal.latency.tasks.roll_up_old_latency")
def roll_up_old_latency() -> int:
    old_records_prune(older_than_days=settings.EDGE_LATENCY_RETENTION_DAYS)
    return latency_roll_up(older_than_days=settings.EDGE_LATENCY_RETENTION_DAYS)
