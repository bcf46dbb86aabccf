"""A job's output as it is made, for the pages: server-sent events that htmx's SSE extension appends to the
job page (and the template editor's *Try it*). Async (edgeportal.asgi sends /stream/ to Django's ASGI
handler): an open page holds no thread."""

from __future__ import annotations

import logging

import redis
from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.utils.html import escape
from django.utils.translation import gettext as _

from edgeportal.accounts.roles import is_manager
from edgeportal.jobs.models import Job
from edgeportal.jobs.waiting import KEEPALIVE, db_step, event_stream, job_events_until_end

log = logging.getLogger(__name__)


def sse(event: str, data: str, event_id: str = "") -> str:
    """One event; every line of data its own `data:` line (the browser joins them with newlines). A lone CR
    is a line break to a browser too: left in, model output could write fields of its own."""
    data = data.replace("\r\n", "\n").replace("\r", "\n")
    lines = "".join(f"data: {line}\n" for line in data.split("\n"))
    return f"event: {event}\n{f'id: {event_id}' + chr(10) if event_id else ''}{lines}\n"


async def job_stream(request, job_id: int):
    job = await db_step(_job_for)(await request.auser(), job_id)
    return event_stream(_events(job, request.headers.get("Last-Event-ID", "")))


def _job_for(user, job_id: int) -> Job:
    if not is_manager(user):
        raise PermissionDenied(_("Only managers and admins can use the job pages."))
    job = Job.objects.filter(pk=job_id).first()
    if job is None:
        raise Http404(_("No job %(id)d.") % {"id": job_id})
    return job


async def _events(job: Job, after: str):
    """`status` and `text` while it runs (a job that does not stream, an API job's, sends neither), then `end`:
    the job ended, and the page fetches its finished fragment."""
    if not job.is_finished:
        try:
            async for event in _while_running(job, after):
                yield event
        except redis.RedisError:  # the page fetches the job as the database has it, and polls from there
            log.warning("job %s: Redis went away while its page streamed", job.pk)
    yield sse("end", "")


async def _while_running(job: Job, after: str):
    """A browser that reconnects says the last event it had (Last-Event-ID): it gets the rest, not it all again."""
    running = False
    async for piece in job_events_until_end(job, after=after):
        if piece is None:
            yield KEEPALIVE
            continue
        event_id, text = piece
        if not running:
            running = True
            label = escape(Job.Status.RUNNING.label)  # in the page's language
            yield sse("status", f'<span class="status status-running" data-testid="job-status">{label}</span>')
        yield sse("text", escape(text), event_id)  # model output is untrusted text
