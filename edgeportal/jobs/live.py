"""A job's output as it is made, for the pages: server-sent events that htmx's SSE extension appends to the
job page (and the template editor's *Try it*). Async (edgeportal.asgi sends /stream/ to Django's ASGI
handler): an open page holds no thread."""

from __future__ import annotations

import logging

import redis
from asgiref.sync import sync_to_async
from django.core.exceptions import PermissionDenied
from django.http import Http404, StreamingHttpResponse
from django.utils.html import escape

from edgeportal.accounts.roles import is_manager
from edgeportal.jobs.models import Job
from edgeportal.jobs.waiting import job_events_until_end

log = logging.getLogger(__name__)


def sse(event: str, data: str) -> str:
    """One event; every line of data its own `data:` line (the browser joins them with newlines)."""
    lines = "".join(f"data: {line}\n" for line in data.split("\n"))
    return f"event: {event}\n{lines}\n"


async def job_stream(request, job_id: int):
    user = await request.auser()
    if not await sync_to_async(is_manager)(user):
        raise PermissionDenied("Only managers and admins can use the job pages.")
    job = await Job.objects.filter(pk=job_id).afirst()
    if job is None:
        raise Http404(f"No job {job_id}.")
    response = StreamingHttpResponse(_events(job), content_type="text/event-stream")
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"
    return response


async def _events(job: Job):
    """`status` and `text` while it runs (a job that does not stream, an API job's, sends neither), then `end`:
    the job ended, and the page fetches its finished fragment."""
    if not job.is_finished:
        try:
            async for event in _while_running(job):
                yield event
        except redis.RedisError:  # the page fetches the job as the database has it, and polls from there
            log.warning("job %s: Redis went away while its page streamed", job.pk)
    yield sse("end", "")


async def _while_running(job: Job):
    running = False
    async for text in job_events_until_end(job):
        if text is None:
            yield ": waiting\n\n"  # a comment: keeps proxies from closing a quiet stream
            continue
        if not running:
            running = True
            yield sse("status", '<span class="status status-running" data-testid="job-status">running</span>')
        yield sse("text", escape(text))  # model output is untrusted text
