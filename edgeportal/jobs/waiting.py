"""Waiting for a job without polling the database: its events in Redis (inference.store.job_events), and the
server-sent-event responses that relay them (the OpenAI-compatible API and the pages)."""

from __future__ import annotations

import functools
import time
from collections.abc import AsyncIterator, Callable

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import connections
from django.http import StreamingHttpResponse
from django.utils import timezone

from edgeportal.core.queueing import async_redis
from edgeportal.jobs.models import Job
from inference.store.job_events import END, OFFSET, TOKEN, read_events

# After its deadline a job is expired by a worker's timer within a second or two; past this, the reader stops
# waiting for the event and reads the job as it is.
GRACE_S = 5.0
KEEPALIVE_S = 10.0  # a stream says it is alive at least this often
KEEPALIVE = ": waiting\n\n"  # an SSE comment: keeps proxies and clients from closing a quiet stream


async def job_events_until_end(job: Job, *, after: str = "") -> AsyncIterator[tuple[str, str] | None]:
    """(event id, new text) for each piece of the job's text, until it ended (or its deadline and a grace
    passed); None when KEEPALIVE_S went by without one. From its first event, or after the event `after`
    (a browser that reconnects). Text sent twice (a batch that ran again) is skipped by its offset."""
    client = async_redis()
    deadline = time.monotonic() + GRACE_S
    if job.deadline_at is not None:
        deadline += max(0.0, (job.deadline_at - timezone.now()).total_seconds())
    received = None if after else 0  # how much of the job's text the reader has (unknown: resuming)
    after = after or "0-0"  # from the first event: one written before this read began is not missed
    while (left := deadline - time.monotonic()) > 0:
        block_ms = int(min(left, KEEPALIVE_S) * 1000)
        events = await read_events(client, settings.EDGE_REDIS_PREFIX, job.pk, after=after, block_ms=block_ms)
        if not events:
            yield None
        for event_id, fields in events:
            after = event_id
            if END in fields:
                return
            text, offset = fields.get(TOKEN, ""), int(fields.get(OFFSET, 0))
            received = offset if received is None else received
            if text and offset <= received < offset + len(text):
                yield event_id, text[received - offset :]
                received = offset + len(text)


def event_stream(events: AsyncIterator[str]) -> StreamingHttpResponse:
    response = StreamingHttpResponse(events, content_type="text/event-stream")
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"  # a proxy in front must not hold the stream back
    return response


def db_step(function: Callable) -> Callable:
    """function as a coroutine, run in the request's thread, which closes its database connection when done:
    a request that then waits or streams for seconds holds none (the thread is the request's own, so a
    connection kept by DB_CONN_MAX_AGE would serve no other request)."""

    @functools.wraps(function)
    def releasing(*args, **kwargs):
        try:
            return function(*args, **kwargs)
        finally:
            connections.close_all()

    return sync_to_async(releasing)
