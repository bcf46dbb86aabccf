"""Reads of the latency lab: the run list and one run with its points."""

from django.db.models import Count, QuerySet

from edgeportal.lab.models import LabPoint, LabRun


def labrun_list(*, limit: int = 100) -> QuerySet[LabRun]:
    return LabRun.objects.annotate(window_count=Count("points"))[:limit]


def labrun_get(*, run_id: int) -> LabRun | None:
    return LabRun.objects.filter(pk=run_id).first()


def labpoint_list(*, run: LabRun) -> list[LabPoint]:
    # The per-job samples can be large and no page shows them.
    return list(run.points.defer("samples").order_by("window_ms"))
