"""Celery tasks of the jobs app: thin shells around services."""

from celery import shared_task
from django.conf import settings

from edgeportal.jobs.refusals import refusals_flush
from edgeportal.jobs.services import jobs_requeue_lost


@shared_task
def requeue_lost_jobs() -> int:
    return jobs_requeue_lost(grace_s=settings.EDGE_SWEEP_GRACE_S)


@shared_task
def store_refusals() -> int:
    return refusals_flush()
