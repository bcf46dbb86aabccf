"""The OpenAI-compatible endpoints. Async views (edgeportal.asgi sends /v1/ to Django's ASGI handler): a
request waiting for its job, or streaming it, holds no thread; it blocks on the job's events in Redis
(inference.store.job_events), never polling the database."""

from __future__ import annotations

import redis
from django.contrib.auth.decorators import login_not_required
from django.http import JsonResponse
from django.views.decorators.csrf import csrf_exempt

from edgeportal.jobs.api import json_object
from edgeportal.jobs.entry import JobRejected
from edgeportal.jobs.waiting import KEEPALIVE, db_step, event_stream, job_events_until_end
from edgeportal.openai_api import responses, selectors
from edgeportal.openai_api.requests import ApiError, CompletionRequest, parse_request
from edgeportal.sources.services import source_authenticate


def openai_endpoint(view):
    """csrf-exempt, no login page (a bearer token instead), errors in OpenAI's shape."""

    @csrf_exempt
    @login_not_required
    async def wrapper(request, *args, **kwargs):
        try:
            return await view(request, *args, **kwargs)
        except ApiError as error:
            return responses.error_response(error)
        except redis.RedisError:
            message = "The job queue (Redis) is not reachable. Try again shortly."
            return responses.error_response(responses.api_error(503, message, code="queue_unavailable"))

    wrapper.__name__ = view.__name__
    return wrapper


async def _source(request):
    source = await db_step(source_authenticate)(authorization=request.headers.get("Authorization", ""))
    if source is None:
        raise responses.api_error(401, "Send 'Authorization: Bearer <source token>' with a valid token.",
                                  code="invalid_api_key")  # fmt: skip
    return source


@openai_endpoint
async def models(request):
    if request.method != "GET":
        raise responses.api_error(405, "Use GET.", code="method_not_allowed")
    await _source(request)
    return JsonResponse({"object": "list", "data": await db_step(selectors.served_models)()})


@openai_endpoint
async def chat_completions(request):
    return await _complete(request, chat=True)


@openai_endpoint
async def completions(request):
    return await _complete(request, chat=False)


async def _complete(request, *, chat: bool):
    if request.method != "POST":
        raise responses.api_error(405, "Use POST.", code="method_not_allowed")
    source = await _source(request)
    try:
        body = json_object(request)
    except JobRejected as rejected:
        raise responses.api_error(rejected.status, rejected.message, code=rejected.code) from None
    completion = parse_request(body, chat=chat)
    job = await db_step(selectors.submit)(completion, source)
    if completion.stream:
        return event_stream(_stream(job, completion))
    if not job.is_finished:
        try:
            async for _ in job_events_until_end(job):
                pass
        except redis.RedisError:
            raise responses.api_error(503, f"Redis went away while job {job.pk} ran; GET /api/jobs/{job.pk} follows "
                                      "it (do not send it again).", code="queue_unavailable") from None  # fmt: skip
    job = await db_step(selectors.finished_job)(job)
    if job.status != job.Status.DONE:
        raise responses.job_error(job)
    return JsonResponse(responses.completion_body(job, completion))


async def _stream(job, completion: CompletionRequest):
    """Server-sent events: each piece of text as the batch decodes it, then the finish, the usage when asked
    for, and [DONE]. A job that expires or fails ends with an error event."""
    sent = ""
    try:
        if not job.is_finished:
            async for piece in job_events_until_end(job):
                if piece is None:
                    yield KEEPALIVE
                    continue
                yield responses.chunk(job, completion, piece[1], first=not sent)
                sent += piece[1]
    except redis.RedisError:  # the stream has begun: the error goes in it (the job itself runs on)
        message = f"Redis went away while job {job.pk} streamed; GET /api/jobs/{job.pk} follows it."
        yield responses.event(responses.error_body(responses.api_error(503, message, code="queue_unavailable")))
        yield responses.DONE
        return
    job = await db_step(selectors.finished_job)(job)
    if job.status != job.Status.DONE:
        yield responses.event(responses.error_body(responses.job_error(job)))
        yield responses.DONE
        return
    if not job.output.startswith(sent):  # a run that was not streamed (a retry alone) answered differently
        message = f"Job {job.pk}'s stored output differs from the text streamed; GET /api/jobs/{job.pk} has it."
        yield responses.event(responses.error_body(responses.api_error(500, message, code="stream_mismatch")))
        yield responses.DONE
        return
    rest = job.output[len(sent) :]
    if rest or not sent:  # a cache hit, an identical job's answer, or what the stream held back
        yield responses.chunk(job, completion, rest, first=not sent)
    extra = {} if completion.include_usage else {"edgeportal": responses.edgeportal_object(job)}
    yield responses.chunk(job, completion, None, finish=job.finish_reason or "stop", extra=extra)
    if completion.include_usage:
        yield responses.usage_chunk(job, completion)
    yield responses.DONE
