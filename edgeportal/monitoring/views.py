"""The live dashboard (every logged-in user), /metrics for Prometheus (localhost, or a bearer token), and the
health endpoints for systemd, Docker and Kubernetes (/healthz, /readyz: no login)."""

import hmac
import ipaddress

from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.http import HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_safe

from edgeportal.monitoring import metrics, selectors


@require_GET
def dashboard(request):
    context = {
        "queue": selectors.queue_state(),
        "recent": selectors.recent_activity(),
        "trend": selectors.dashboard_trend(),
    }
    name = "monitoring/dashboard_live.html" if request.htmx else "monitoring/dashboard.html"
    return render(request, name, context)


def _from_localhost(request) -> bool:
    try:
        address = ipaddress.ip_address(request.META.get("REMOTE_ADDR", ""))
    except ValueError:
        return False
    if address.version == 6 and address.ipv4_mapped:  # ::ffff:127.0.0.1 on a dual-stack socket
        address = address.ipv4_mapped
    return address.is_loopback


def _has_metrics_token(request) -> bool:
    token = settings.METRICS_TOKEN
    if not token:
        return False
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    # Compared as bytes: compare_digest refuses non-ASCII str, and a header may carry any Latin-1 text.
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode())


@login_not_required  # Prometheus has no session: it is admitted by address or token instead
@require_GET
def metrics_view(request):
    if _from_localhost(request) or _has_metrics_token(request):
        return HttpResponse(metrics.exposition(), content_type=metrics.CONTENT_TYPE)
    if settings.METRICS_TOKEN:
        message = "/metrics answers localhost, or requests with 'Authorization: Bearer <METRICS_TOKEN>'.\n"
    else:
        message = "/metrics answers localhost only; set METRICS_TOKEN to admit a scraper from elsewhere.\n"
    return HttpResponse(message, status=403, content_type="text/plain; charset=utf-8")


@login_not_required
@never_cache
@require_safe
def healthz(request):
    """Liveness: the web process answers. Touches neither the database nor Redis."""
    return JsonResponse({"status": "ok"})


@login_not_required
@never_cache
@require_safe
def readyz(request):
    """Readiness: 200 when the database, Redis and a live worker with its model answer; 503 naming what fails."""
    readiness = selectors.readiness()
    body = {"status": "ready" if readiness.ready else "unavailable", "failing": readiness.failing}
    return JsonResponse({**body, "checks": readiness.checks}, status=200 if readiness.ready else 503)
