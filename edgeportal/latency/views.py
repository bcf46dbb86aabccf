"""Latency pages for everyone logged in: the history of job latencies, the batch view, and the CSV export.

One URL serves the full page and, for htmx, only its results fragment; the filters are a GET form either way.
"""

import csv
import time
from itertools import chain

from django.core.paginator import Paginator
from django.http import HttpResponseBadRequest, StreamingHttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.utils.translation import gettext as _

from edgeportal.accounts.roles import is_manager
from edgeportal.latency import batch_reads, charts, selectors
from edgeportal.latency.buckets import BUCKET_COUNT, bucket_label
from edgeportal.latency.forms import HistoryFilterForm

PAGE_SIZE = 50
# The filters a batch has: it has no template, source, status or cache hit, and the batch page does not sort.
BATCH_FIELDS = ["period", "date_from", "date_to", "lane", "batch_size", "worker"]
CSV_COLUMNS = [
    ("created_at", "created_at"), ("job_id", "job_id"), ("status", "status"), ("cache_hit", "cache_hit"),
    ("template", "template__slug"), ("source", "source__name"), ("lane", "lane"), ("priority", "priority"),
    ("worker", "worker"), ("batch_size", "batch_size"), ("queue_wait_ms", "queue_wait_ms"),
    ("window_wait_ms", "window_wait_ms"), ("inference_ms", "inference_ms"), ("total_ms", "total_ms"),
    ("deadline_ms", "deadline_ms"), ("prompt_tokens", "prompt_tokens"), ("output_tokens", "output_tokens"),
]  # fmt: skip


def _milliseconds_since(started: float) -> float:
    return (time.perf_counter() - started) * 1000


def history(request):
    started = time.perf_counter()
    form = HistoryFilterForm(request.GET)
    context = {"form": form, "workers": batch_reads.recent_workers(), "fields": list(form.fields)}
    status = 200
    if form.is_valid():
        filters = form.filters()
        summary = selectors.latency_summary(filters=filters)
        timeline = selectors.latency_timeline(filters=filters)
        records = selectors.latency_records_sorted(filters=filters, sort=form.ordering())
        paginator = Paginator(records.select_related("template", "source"), PAGE_SIZE)
        paginator.count = summary.record_count  # already counted: spare the paginator its own COUNT(*)
        page = paginator.get_page(request.GET.get("page"))
        rows = list(page.object_list)
        context.update(
            filters=filters,
            summary=summary,
            page=page,
            rows=rows,
            histogram_chart=charts.bar_chart(
                labels=[bucket_label(i) for i in range(BUCKET_COUNT)], values=summary.histogram,
                title=_("Jobs per total latency bucket"), y_label=_("jobs"), testid="histogram",
            ),
            timeline_chart=_timeline_chart(timeline),
            timeline=timeline,
            slot_text=charts.duration_text(timeline.width_s) if timeline else "",
            query_ms=_milliseconds_since(started),
            may_open_jobs=is_manager(request.user),
        )  # fmt: skip
    else:
        status = 400
    name = "latency/history_results.html" if request.htmx else "latency/history.html"
    return render(request, name, context, status=status)


def _timeline_chart(timeline):
    if timeline is None:
        return None
    points = timeline.points
    return charts.line_chart(
        series=[
            charts.Series(_("mean total ms"), [(p.start.timestamp(), p.mean_ms) for p in points]),
            charts.Series(_("max total ms"), [(p.start.timestamp(), p.max_ms) for p in points]),
        ],
        x_ticks=charts.time_ticks(timeline.start, points[-1].start),
        title=_("Total latency over time"),
        y_label="ms",
        testid="timeline",
    )


def batches(request):
    started = time.perf_counter()
    form = HistoryFilterForm(request.GET)
    context = {"form": form, "workers": batch_reads.recent_workers(), "fields": BATCH_FIELDS, "batch_view": True}
    status = 200
    if form.is_valid():
        filters = form.filters()
        slot_width_s, slots = batch_reads.batch_timeline(filters=filters)
        curve = batch_reads.batch_curve(filters=filters)
        context.update(
            filters=filters,
            slots=slots,
            slot_text=charts.duration_text(slot_width_s) if slots else "",
            curve=curve,
            batch_count=sum(slot.batches for slot in slots),
            **_batch_charts(slots, curve),
            query_ms=_milliseconds_since(started),
        )
    else:
        status = 400
    name = "latency/batch_results.html" if request.htmx else "latency/batches.html"
    return render(request, name, context, status=status)


def _batch_charts(slots, curve) -> dict:
    if not slots:
        return {}
    ticks = charts.time_ticks(slots[0].start, slots[-1].start)
    at = [slot.start.timestamp() for slot in slots]

    def over_time(value):
        return [(x, value(slot) if slot.batches else None) for x, slot in zip(at, slots, strict=True)]

    return {
        "size_chart": charts.line_chart(
            series=[
                charts.Series(_("mean batch size"), over_time(lambda slot: slot.mean_size)),
                charts.Series(_("largest batch"), over_time(lambda slot: slot.max_size)),
            ],
            x_ticks=ticks, title=_("Batch size over time"), y_label=_("jobs"), testid="batch-size",
        ),
        "padding_chart": charts.line_chart(
            series=[
                charts.Series(_("prompt tokens"), over_time(lambda slot: slot.prompt_tokens)),
                charts.Series(_("padded tokens"), over_time(lambda slot: slot.padded_tokens)),
            ],
            x_ticks=ticks, title=_("Prompt tokens with and without padding"), y_label=_("tokens"), testid="padding",
        ),
        "curve_chart": charts.line_chart(
            series=[
                charts.Series(_("inference ms per batch"), [(r.size, r.mean_inference_ms) for r in curve]),
                charts.Series(_("inference ms per job"), [(r.size, r.per_job_ms) for r in curve]),
            ],
            x_ticks=[(r.size, str(r.size)) for r in curve], title=_("Inference time per batch size"),
            y_label="ms", testid="batch-curve",
        ),
    }  # fmt: skip


class _Echo:
    """A file-like object whose write returns the line: csv.writer then yields lines for streaming."""

    def write(self, value: str) -> str:
        return value


def history_csv(request):
    form = HistoryFilterForm(request.GET)
    if not form.is_valid():
        problems = "; ".join(f"{field}: {' '.join(errors)}" for field, errors in form.errors.items())
        message = _("Invalid filters: %(problems)s") % {"problems": problems}
        return HttpResponseBadRequest(message + "\n", content_type="text/plain; charset=utf-8")
    records = selectors.latency_records_sorted(filters=form.filters(), sort=form.ordering()).values_list(
        *(lookup for _, lookup in CSV_COLUMNS)
    )
    writer = csv.writer(_Echo())
    header = [name for name, _ in CSV_COLUMNS]
    lines = (writer.writerow(_csv_row(row)) for row in chain([header], records.iterator(chunk_size=2000)))
    response = StreamingHttpResponse(lines, content_type="text/csv; charset=utf-8")
    stamp = timezone.now().strftime("%Y%m%d-%H%M%S")
    response["Content-Disposition"] = f'attachment; filename="latency-{stamp}.csv"'
    return response


# A spreadsheet runs a cell that starts like a formula: a worker or source named "=HYPERLINK(...)"
# must reach it as text. A leading apostrophe is the OWASP-recommended escape; numbers are left alone.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _csv_row(row) -> list:
    return [_csv_cell(value) for value in row]


def _csv_cell(value):
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value
