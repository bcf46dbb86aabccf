"""The bodies the OpenAI-compatible API answers with, in OpenAI's shapes, plus our `edgeportal` object."""

from __future__ import annotations

import json

from django.http import JsonResponse

from edgeportal.jobs.models import Job
from edgeportal.jobs.selectors import cache_hit_value, output_as_json
from edgeportal.openai_api.requests import ApiError, CompletionRequest

ERROR_TYPES = {
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    429: "rate_limit_error",
    503: "service_unavailable_error",
}


def error_body(error: ApiError) -> dict:
    return {"error": {"message": error.message, "type": error.kind, "param": error.param, "code": error.code}}


def error_response(error: ApiError) -> JsonResponse:
    response = JsonResponse(error_body(error), status=error.status)
    if error.retry_after is not None:
        response["Retry-After"] = str(error.retry_after)
    return response


def api_error(status: int, message: str, *, code: str | None, param: str | None = None, retry_after=None) -> ApiError:
    """Our refusal as OpenAI's error: its type from the status, our code in `code`."""
    kind = ERROR_TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error")
    return ApiError(status, message, param=param, code=code, kind=kind, retry_after=retry_after)


def job_error(job: Job) -> ApiError:
    """A job that ended without an output: expired (its deadline) or failed (the model or the worker), or one
    still unfinished when its deadline (and a grace) passed."""
    if job.status == Job.Status.EXPIRED:
        return api_error(504, job.error or "The job expired before it could run.", code="expired")
    if job.status == Job.Status.FAILED:
        return api_error(500, job.error or "The job failed.", code="inference_failed")
    message = f"Job {job.pk} did not finish by its deadline (it is {job.status}); GET /api/jobs/{job.pk} follows it."
    return api_error(504, message, code="deadline_passed")


def _id(job: Job, request: CompletionRequest) -> str:
    return f"{'chatcmpl' if request.chat else 'cmpl'}-{job.pk}"


def usage(job: Job) -> dict:
    prompt, completion = job.prompt_tokens or 0, job.output_tokens or 0
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def edgeportal_object(job: Job) -> dict:
    """The job behind the answer and its latency record: what no other OpenAI-compatible server says."""
    latency = getattr(job, "latency", None)

    def ms(name):
        value = getattr(latency, name, None) if latency else None
        return None if value is None else round(value, 1)

    return {
        "job_id": job.pk,
        "status": job.status,
        "priority": job.priority,
        "lane": job.lane,
        "cache_hit": cache_hit_value(job),
        "cache_similarity": job.cache_similarity,
        "deadline_at": job.deadline_at.isoformat() if job.deadline_at else None,
        "queue_wait_ms": ms("queue_wait_ms"),
        "window_wait_ms": ms("window_wait_ms"),
        "inference_ms": ms("inference_ms"),
        "time_to_first_token_ms": ms("first_token_ms"),
        "total_ms": ms("total_ms"),
        "batch_size": latency.batch_size if latency else None,
        # A template's outputs (the message is the first one's text), each with its checks.
        "outputs": [output_as_json(output) for output in job.outputs.all()] if job.has_outputs else None,
    }


def _head(job: Job, request: CompletionRequest, kind: str) -> dict:
    return {"id": _id(job, request), "object": kind, "created": int(job.created_at.timestamp()), "model": job.model}


def completion_body(job: Job, request: CompletionRequest) -> dict:
    finish = job.finish_reason or "stop"
    if request.chat:
        choice = {"index": 0, "message": {"role": "assistant", "content": job.output}, "finish_reason": finish,
                  "logprobs": None}  # fmt: skip
    else:
        choice = {"index": 0, "text": job.output, "finish_reason": finish, "logprobs": None}
    kind = "chat.completion" if request.chat else "text_completion"
    return {**_head(job, request, kind), "choices": [choice], "usage": usage(job), "edgeportal": edgeportal_object(job)}


def chunk(job: Job, request: CompletionRequest, text: str | None, *, first: bool = False, finish: str | None = None,
          extra: dict | None = None) -> str:  # fmt: skip
    """One server-sent event: a piece of text (or the last chunk, with its finish reason)."""
    if request.chat:
        delta = {"role": "assistant"} if first else {}
        if text is not None:
            delta["content"] = text
        choice = {"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}
        kind = "chat.completion.chunk"
    else:
        choice = {"index": 0, "text": text or "", "finish_reason": finish, "logprobs": None}
        kind = "text_completion"
    return event({**_head(job, request, kind), "choices": [choice], **(extra or {})})


def usage_chunk(job: Job, request: CompletionRequest) -> str:
    """stream_options.include_usage: a last chunk without choices, with the usage (and our object)."""
    kind = "chat.completion.chunk" if request.chat else "text_completion"
    return event(
        {**_head(job, request, kind), "choices": [], "usage": usage(job), "edgeportal": edgeportal_object(job)}
    )


def event(data: dict) -> str:
    return f"data: {json.dumps(data, ensure_ascii=False)}\n\n"


DONE = "data: [DONE]\n\n"
