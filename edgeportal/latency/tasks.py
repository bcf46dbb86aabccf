"""Celery tasks of the latency app: thin shells around services."""

from celery import shared_task
from django.conf import settings

from edgeportal.latency.services import latency_roll_up, old_records_prune


@shared_task
def roll_up_old_latency() -> int:
    old_records_prune(older_than_days=settings.EDGE_LATENCY_RETENTION_DAYS)
    return latency_roll_up(older_than_days=settings.EDGE_LATENCY_RETENTION_DAYS)
