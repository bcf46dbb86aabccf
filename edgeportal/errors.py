"""The site's answer to an uncaught error: 503 while the database or Redis is unreachable, else the 500 page."""

from __future__ import annotations

import sys

import redis
from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.template import loader

RETRY_AFTER_S = 5  # a restart of PostgreSQL or Redis takes seconds
# What an outage raises: a refused or dropped connection, a server shutting down or still loading, a lock timeout.
# Any other error is a bug and stays a 500.
UNAVAILABLE = {
    OperationalError: ("database_unavailable", "The database is not reachable right now; try again shortly."),
    InterfaceError: ("database_unavailable", "The database is not reachable right now; try again shortly."),
    redis.ConnectionError: ("queue_unavailable", "The job queue (Redis) is not reachable; try again shortly."),
    redis.TimeoutError: ("queue_unavailable", "The job queue (Redis) is not reachable; try again shortly."),
}


def _unavailable(error: BaseException | None) -> tuple[str, str] | None:
    for kind, answer in UNAVAILABLE.items():
        if isinstance(error, kind):
            return answer
    return None


def server_error(request: HttpRequest) -> HttpResponse:
    """handler500: Django calls it while the error is being handled, so sys.exc_info() names it.

    An outage answers 503 with Retry-After, as JSON `{"error": {"code", "message"}}` under /api/ and as a
    plain page elsewhere; neither touches the database. Anything else gets the 500 page."""
    found = _unavailable(sys.exc_info()[1])
    if found is None:
        return HttpResponse(loader.get_template("500.html").render(), status=500)
    code, message = found
    if request.path.startswith("/api/"):
        response = JsonResponse({"error": {"code": code, "message": message}}, status=503)
    else:
        response = HttpResponse(loader.get_template("503.html").render({"message": message}), status=503)
    response["Retry-After"] = str(RETRY_AFTER_S)
    return response
