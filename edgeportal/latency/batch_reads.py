"""Reads for the batch view: batches per time slot, the batching curve (time per batch size), worker names."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import Avg, Count, Max, Min, QuerySet, Sum
from django.utils import timezone

from edgeportal.latency.forms import HistoryFilters
from edgeportal.latency.models import BatchRecord
from edgeportal.latency.selectors import TimeSlot, slot_starts, timeline_slots


def batch_records(*, filters: HistoryFilters) -> QuerySet[BatchRecord]:
    """Batches in the range; of the other filters only lane, worker and batch size apply to a batch."""
    batches = BatchRecord.objects.all()
    if filters.start is not None:
        batches = batches.filter(created_at__gte=filters.start)
    if filters.end is not None:
        batches = batches.filter(created_at__lt=filters.end)
    lookups = {"lane": filters.lane, "worker": filters.worker, "size": filters.batch_size}
    return batches.filter(**{field: value for field, value in lookups.items() if value is not None})


@dataclass(frozen=True)
class BatchSlot:
    start: datetime
    batches: int
    mean_size: float | None
    max_size: int | None
    prompt_tokens: int
    padded_tokens: int


@dataclass(frozen=True)
class BatchSizeRow:
    size: int
    batches: int
    mean_inference_ms: float
    max_inference_ms: float
    per_job_ms: float
    padding_share: float | None  # padded prompt tokens that are padding, 0..1


def batch_timeline(*, filters: HistoryFilters, now: datetime | None = None) -> tuple[int, list[BatchSlot]]:
    """Per time slot: how many batches ran, their mean and largest size, real and padded prompt tokens."""
    batches = batch_records(filters=filters)
    end = filters.end or now or timezone.now()
    start = filters.start or batches.aggregate(first=Min("created_at"))["first"]
    if start is None:
        return 0, []
    origin, width = timeline_slots(start, end)
    rows = {
        entry["slot"]: entry
        for entry in batches.annotate(slot=TimeSlot("created_at", origin=origin, width_s=width))
        .values("slot")
        .annotate(
            batches=Count("pk"),
            mean_size=Avg("size"),
            max_size=Max("size"),
            prompt=Sum("prompt_tokens"),
            padded=Sum("padded_tokens"),
        )
        .order_by("slot")
    }
    slots = []
    for slot, slot_start in slot_starts(origin, width, end, rows):
        entry = rows.get(slot, {})
        slots.append(
            BatchSlot(
                start=slot_start,
                batches=entry.get("batches", 0),
                mean_size=entry.get("mean_size"),
                max_size=entry.get("max_size"),
                prompt_tokens=entry.get("prompt") or 0,
                padded_tokens=entry.get("padded") or 0,
            )
        )
    return width, slots


def batch_curve(*, filters: HistoryFilters) -> list[BatchSizeRow]:
    """Inference time per batch size: the batching curve of the model as it ran here."""
    rows = (
        batch_records(filters=filters)
        .values("size")
        .annotate(
            batches=Count("pk"),
            mean_ms=Avg("inference_ms"),
            max_ms=Max("inference_ms"),
            prompt=Sum("prompt_tokens"),
            padded=Sum("padded_tokens"),
        )
        .order_by("size")
    )
    return [
        BatchSizeRow(
            size=row["size"],
            batches=row["batches"],
            mean_inference_ms=row["mean_ms"],
            max_inference_ms=row["max_ms"],
            per_job_ms=row["mean_ms"] / row["size"] if row["size"] else row["mean_ms"],
            padding_share=1 - row["prompt"] / row["padded"] if row["padded"] else None,
        )
        for row in rows
    ]


def recent_workers(*, days: int = 7) -> list[str]:
    """Worker names of the last days' batches, for the worker filter's suggestions."""
    since = timezone.now() - timedelta(days=days)
    names = BatchRecord.objects.filter(created_at__gte=since).exclude(worker="").values_list("worker", flat=True)
    names = names.distinct()
    return sorted(set(names))
