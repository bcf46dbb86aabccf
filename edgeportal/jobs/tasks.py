"""Celery tasks of the jobs app: thin shells around services."""

from celery import shared_task
from django.conf import settings

from edgeportal.jobs.queueing import get_queue
from edgeportal.jobs.services import jobs_requeue_lost


@shared_task
def requeue_lost_jobs() -> int:
    get_queue().recount_owners()  # fair share's counts heal here if they ever drifted
    return jobs_requeue_lost(grace_s=settings.EDGE_SWEEP_GRACE_S)
