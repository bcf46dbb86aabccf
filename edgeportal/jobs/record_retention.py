"""The retention of batch records (latency's) and refusals (jobs'): deleted, not rolled up.

In jobs, above latency, because it deletes both; latency's hourly task runs it (edgeportal.jobs.tasks).
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.utils import timezone

from edgeportal.jobs.models import Rejection
from edgeportal.latency.models import BatchRecord
from edgeportal.latency.services import hour_floor

log = logging.getLogger(__name__)


def old_records_prune(*, older_than_days: int, now: datetime | None = None) -> tuple[int, int]:
    """Delete batch records and refusals older than the retention; returns how many of each.

    Unlike job latencies they are not rolled up: the batch view and the dashboard read recent ones, and a
    job keeps its own times and worker when its batch record goes."""
    cutoff = hour_floor((now or timezone.now()) - timedelta(days=older_than_days))
    batches, _ = BatchRecord.objects.filter(created_at__lt=cutoff).delete()  # their jobs' batch becomes empty
    refusals, _ = Rejection.objects.filter(created_at__lt=cutoff).delete()
    if batches or refusals:
        log.info("deleted %d batch records and %d refusals older than %s", batches, refusals, cutoff.isoformat())
    return batches, refusals
