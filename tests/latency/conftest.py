"""Latency records made directly, with the finish time each test needs."""

from datetime import timedelta

import pytest
from django.utils import timezone

from edgeportal.jobs.models import Job
from edgeportal.latency.models import JobLatency


@pytest.fixture
def make_record(db):
    """A finished job and its latency record; created_at defaults to a minute ago."""

    def make(*, total_ms: float, created_at=None, status: str = "done", **fields) -> JobLatency:
        job = Job.objects.create(prompt="p", max_new_tokens=8, status=status)
        record = JobLatency.objects.create(job=job, status=status, total_ms=total_ms, **fields)
        record.created_at = created_at or timezone.now() - timedelta(minutes=1)
        JobLatency.objects.filter(pk=record.pk).update(created_at=record.created_at)  # auto_now_add ignores ours
        return record

    return make
