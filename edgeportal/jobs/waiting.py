"""Waiting for a job without polling the database: its events in Redis (inference.job_events)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

from django.conf import settings
from django.utils import timezone

from edgeportal.core.queueing import async_redis
from edgeportal.jobs.models import Job
from inference.job_events import END, TOKEN, read_events

# After its deadline a job is expired by a worker's timer within a second or two; past this, the reader stops
# waiting for the event and reads the job as it is.
GRACE_S = 5.0
KEEPALIVE_S = 10.0  # a stream says it is alive at least this often


async def job_events_until_end(job: Job) -> AsyncIterator[str | None]:
    """The job's streamed text, piece by piece, until it ended (or its deadline and a grace passed); None
    when KEEPALIVE_S went by without an event."""
    client = async_redis()
    deadline = time.monotonic() + GRACE_S
    if job.deadline_at is not None:
        deadline += max(0.0, (job.deadline_at - timezone.now()).total_seconds())
    after = "0-0"  # from the first event: one written before this read began is not missed
    while (left := deadline - time.monotonic()) > 0:
        events = await read_events(
            client, settings.EDGE_REDIS_PREFIX, job.pk, after=after, block_ms=int(min(left, KEEPALIVE_S) * 1000)
        )
        if not events:
            yield None
        for event_id, fields in events:
            after = event_id
            if END in fields:
                return
            if fields.get(TOKEN):
                yield fields[TOKEN]
