"""Writes on latency records: the retention roll-up of old records into hourly aggregates (old batch records
and refusals are pruned by edgeportal.jobs.record_retention, as refusals are jobs')."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

from django.db import transaction
from django.db.models import Count, Max, Min, Sum
from django.utils import timezone

from edgeportal.latency.buckets import BUCKET_COUNT, STAGES
from edgeportal.latency.models import JobLatency, LatencyHour, LatencyHourBucket
from edgeportal.latency.selectors import TimeSlot, bucket_aggregates

log = logging.getLogger(__name__)

DIMENSIONS = ("template_id", "source_id", "lane", "status", "cache_hit", "worker")
# Rolled per day, each day in its own transaction: a first run over months of records never holds one huge one.
CHUNK = timedelta(days=1)


def hour_floor(moment: datetime) -> datetime:
    return datetime.fromtimestamp(int(moment.timestamp()) // 3600 * 3600, tz=UTC)


def latency_roll_up(*, older_than_days: int, now: datetime | None = None) -> int:
    """Fold the records of every whole hour older than the retention into hourly aggregates, then delete them.

    Returns how many records were rolled up. An hour is never split between records and aggregates; records
    that turn up later in an hour already rolled (a slow clock) are added to its aggregates.
    """
    cutoff = hour_floor((now or timezone.now()) - timedelta(days=older_than_days))
    rolled = 0
    while True:
        first = JobLatency.objects.filter(created_at__lt=cutoff).aggregate(first=Min("created_at"))["first"]
        if first is None:
            break
        start = hour_floor(first)
        rolled += _roll_up_range(start=start, end=min(cutoff, start + CHUNK))
    if rolled:
        log.info("rolled %d latency records older than %s into hourly aggregates", rolled, cutoff.isoformat())
    return rolled


@transaction.atomic
def _roll_up_range(*, start: datetime, end: datetime) -> int:
    records = JobLatency.objects.filter(created_at__gte=start, created_at__lt=end)
    stats = {}
    for stage, column in STAGES.items():
        stats[f"{stage}_count"] = Count(column)
        stats[f"{stage}_sum"] = Sum(column)
        stats[f"{stage}_max"] = Max(column)
    groups = (
        records.annotate(slot=TimeSlot("created_at", origin=start, width_s=3600))
        .values("slot", *DIMENSIONS)
        .annotate(jobs=Count("pk"), **stats, **bucket_aggregates(list(STAGES)))
        .order_by()
    )
    for group in groups:
        _merge_group(start + timedelta(hours=group["slot"]), group)
    rolled, _ = records.delete()
    return rolled


def _merge_group(hour: datetime, group: dict) -> None:
    key = {"hour": hour, **{dimension: group[dimension] for dimension in DIMENSIONS}}
    aggregate = LatencyHour.objects.select_for_update().filter(**key).first()
    is_new = aggregate is None
    if is_new:
        aggregate = LatencyHour(**key, count=0)
    aggregate.count += group["jobs"]
    for stage in STAGES:
        setattr(aggregate, f"{stage}_count", getattr(aggregate, f"{stage}_count") + group[f"{stage}_count"])
        setattr(aggregate, f"{stage}_sum", getattr(aggregate, f"{stage}_sum") + (group[f"{stage}_sum"] or 0))
        maxima = [m for m in (getattr(aggregate, f"{stage}_max"), group[f"{stage}_max"]) if m is not None]
        setattr(aggregate, f"{stage}_max", max(maxima) if maxima else None)
    aggregate.save()
    buckets = [
        LatencyHourBucket(hour=aggregate, metric=stage, bucket=index, count=group[f"{stage}__{index}"])
        for stage in STAGES
        for index in range(BUCKET_COUNT)
        if group[f"{stage}__{index}"]
    ]
    if is_new:
        LatencyHourBucket.objects.bulk_create(buckets)
        return
    for bucket in buckets:
        existing, created = LatencyHourBucket.objects.get_or_create(
            hour=aggregate, metric=bucket.metric, bucket=bucket.bucket, defaults={"count": bucket.count}
        )
        if not created:
            existing.count += bucket.count
            existing.save(update_fields=["count"])
