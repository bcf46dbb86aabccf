"""Latency lab pages: the runs, and one run with its chart, table and recommended window. Open to every user."""

from django.http import Http404
from django.shortcuts import render
from django.utils.translation import gettext as _

from edgeportal.lab import selectors
from edgeportal.lab.chart import chart_build
from edgeportal.lab.forms import TargetForm
from edgeportal.lab.simulator import window_recommend


def run_list(request):
    return render(request, "lab/list.html", {"runs": selectors.labrun_list()})


def run_detail(request, run_id: int):
    run = selectors.labrun_get(run_id=run_id)
    if run is None:
        raise Http404(_("There is no such lab run."))
    points = selectors.labpoint_list(run=run)
    status = 200
    if "target_p95_ms" in request.GET:
        form = TargetForm(request.GET)
        target = form.cleaned_data["target_p95_ms"] if form.is_valid() else None
        status = 200 if form.is_valid() else 400
    else:
        target = run.target_p95_ms
        form = TargetForm(initial={"target_p95_ms": round(target) if target else None})
    context = {
        "run": run,
        "points": points,
        "form": form,
        "target": target,
        "recommended": window_recommend(points, target_p95_ms=target) if target else None,
        "fastest": min(points, key=lambda p: p.p95_ms, default=None),
        "chart": chart_build(points, target_p95_ms=target),
    }
    return render(request, "lab/detail.html", context, status=status)
