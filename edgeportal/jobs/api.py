"""JSON API for machines: submit a job and read it back, authenticated by a source's bearer token."""

import json
from functools import wraps

from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.core.exceptions import RequestDataTooBig
from django.http import JsonResponse
from django.urls import reverse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from edgeportal.echo import quoted
from edgeportal.jobs import selectors
from edgeportal.jobs.entry import JobRejected, job_submit, rejection_record
from edgeportal.prompts.selectors import template_as_json, templates_for_source
from edgeportal.sources.services import source_authenticate

ALLOWED_FIELDS = {"template", "variables", "prompt", "priority", "deadline_ms", "model"}


def error_response(
    status: int, code: str, message: str, field: str | None = None, retry_after: int | None = None
) -> JsonResponse:
    error = {"code": code, "message": message}
    if field:
        error["field"] = field
    response = JsonResponse({"error": error}, status=status)
    if retry_after is not None:
        response["Retry-After"] = str(retry_after)
    return response


def source_required(view):
    @csrf_exempt
    @login_not_required
    @wraps(view)
    def wrapper(request, *args, **kwargs):
        source = source_authenticate(authorization=request.headers.get("Authorization", ""))
        if source is None:
            return error_response(
                401, "unauthorized", "Send 'Authorization: Bearer <source token>' with a valid token."
            )
        request.source = source
        return view(request, *args, **kwargs)

    return wrapper


def body_limit() -> int:
    """The largest body a legal job request can need: its prompt, or the values that render it, has at most
    twice EDGE_MAX_PROMPT_CHARS characters as sent (the guard's raw limit), each at most 12 bytes in JSON
    (an escaped surrogate pair), plus 16 KB for names, the other fields and white space. About 110 KB with
    the default limit, where Django's own limit (2.5 MB) let one request cost a gigabyte to normalise."""
    own = 2 * settings.EDGE_MAX_PROMPT_CHARS * 12 + 16_384
    django_limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    return own if django_limit is None else min(own, django_limit)


def _json_body(request) -> dict:
    body = json_object(request)
    unknown = sorted(set(body) - ALLOWED_FIELDS)
    if unknown:
        names = ", ".join(quoted(name, 40) for name in unknown[:5]) + (" ..." if len(unknown) > 5 else "")
        raise JobRejected(f"Unknown field(s): {names}.", code="unknown_field", field=unknown[0])
    return body


def json_object(request) -> dict:
    """The request's body as a JSON object, refused (JobRejected) when too large, empty or not one."""
    limit = body_limit()
    too_large = JobRejected(f"The request body is larger than {limit} bytes.", code="too_large", status=413)
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        declared = 0  # Django reads such a body as empty
    if declared > limit:
        raise too_large  # refused before a byte of it is read
    try:
        raw = request.body
    except RequestDataTooBig:
        raise too_large from None
    if len(raw) > limit:
        raise too_large
    if not raw.strip():  # also a body sent without a Content-Length (chunked): the WSGI handler reads none
        raise JobRejected("The body is empty: send a JSON object, with a Content-Length header.", code="empty_body")
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError) as error:  # JSONDecodeError, bad UTF-8, huge integers, deep nesting
        raise JobRejected(f"The body is not valid JSON: {error}.", code="invalid_json") from None
    if not isinstance(body, dict):
        raise JobRejected("The body must be a JSON object.", code="invalid_json")
    return body


@require_POST
@source_required
def job_create(request):
    try:
        body = _json_body(request)
    except JobRejected as rejected:
        rejection_record(rejected, source=request.source)
        return error_response(rejected.status, rejected.code, rejected.message, rejected.field)
    try:
        job = job_submit(
            prompt=body.get("prompt"),
            template_slug=body.get("template"),
            variables=body.get("variables"),
            priority=body.get("priority"),
            deadline_ms=body.get("deadline_ms"),
            model=body.get("model"),
            source=request.source,
            allow_free_prompt=request.source.allow_free_prompts,
        )
    except JobRejected as rejected:
        return error_response(rejected.status, rejected.code, rejected.message, rejected.field, rejected.retry_after)
    url = request.build_absolute_uri(reverse("api:job-detail", args=[job.pk]))
    body = {"id": job.pk, "status": job.status, "url": url, "priority": job.priority, "lane": job.lane}
    body["model"] = job.model
    return JsonResponse({**body, "deadline_at": job.deadline_at.isoformat()}, status=202)


@require_GET
@source_required
def template_list(request):
    """The templates this source may use, with each variable's type and limits, for machine integrators."""
    templates = templates_for_source(source=request.source)
    return JsonResponse({"templates": [template_as_json(t) for t in templates]})


@require_GET
@source_required
def job_detail(request, job_id: int):
    job = selectors.job_for_source(source=request.source, job_id=job_id)
    if job is None:
        return error_response(404, "not_found", f"No job {job_id} for this source.")
    return JsonResponse(selectors.job_as_json(job))
