"""Reads for the latency pages: filtered records, their summary, histogram and timeline (batches: batch_reads).

Everything is aggregated in the database: a page over a million records reads a few dozen rows back.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.db import NotSupportedError, connections
from django.db.models import Aggregate, Count, F, FloatField, Func, IntegerField, Max, Min, Q, QuerySet, Sum
from django.utils import timezone

from edgeportal.latency.buckets import (
    BUCKET_COUNT,
    PERCENTILES,
    STAGE_LABELS,
    STAGES,
    bucket_range,
    percentile_from_buckets,
    rank,
)
from edgeportal.latency.forms import HistoryFilters
from edgeportal.latency.models import JobLatency, LatencyHour, LatencyHourBucket

# Timeline slot widths in seconds; the page takes the narrowest that gives at most MAX_SLOTS slots.
SLOT_WIDTHS_S = (60, 300, 900, 1800, 3600, 3 * 3600, 6 * 3600, 12 * 3600, 86400, 7 * 86400, 30 * 86400)
MAX_SLOTS = 72


# --- SQL helpers ---------------------------------------------------------------------------------------------------


class TimeSlot(Func):
    """Index of the width_s-long slot after origin that a datetime falls into, computed by the database.

    Django's Trunc* run a Python function per row on SQLite; this stays in SQL on both databases.
    """

    output_field = IntegerField()

    def __init__(self, expression, *, origin: datetime, width_s: int):
        self.origin_s = int(origin.timestamp())
        self.width_s = int(width_s)
        super().__init__(expression)

    def as_sqlite(self, compiler, connection, **extra):
        # julianday is exact to ~25 µs; rounding to the millisecond keeps whole hours on their slot boundary.
        epoch = "ROUND((julianday(%(expressions)s) - 2440587.5) * 86400.0, 3)"
        template = f"CAST(({epoch} - {self.origin_s}) / {self.width_s} AS INTEGER)"
        return self.as_sql(compiler, connection, template=template, **extra)

    def as_postgresql(self, compiler, connection, **extra):
        template = f"FLOOR((EXTRACT(EPOCH FROM %(expressions)s) - {self.origin_s}) / {self.width_s})::integer"
        return self.as_sql(compiler, connection, template=template, **extra)

    def as_sql(self, compiler, connection, template=None, **extra):
        if template is None:
            raise NotSupportedError(f"TimeSlot is written for SQLite and PostgreSQL, not {connection.vendor}")
        return super().as_sql(compiler, connection, template=template, **extra)


class PercentileDisc(Aggregate):
    """PostgreSQL's percentile_disc: the first value whose rank reaches fraction * N, i.e. the nearest rank."""

    function = "percentile_disc"
    template = "%(function)s(%(fraction)s) WITHIN GROUP (ORDER BY %(expressions)s)"
    output_field = FloatField()

    def __init__(self, expression, *, percentile: int):
        # PostgreSQL computes ceil(fraction * N) in floating point, where 0.95 * N may land just above an integer;
        # a hair less keeps ceil on the exact nearest rank (p * N / 100 is a multiple of 0.01 otherwise).
        super().__init__(expression, fraction=repr(percentile / 100 - 1e-12))


# --- filters ------------------------------------------------------------------------------------------------------


def latency_records(*, filters: HistoryFilters) -> QuerySet[JobLatency]:
    """The raw latency records that match every filter."""
    records = JobLatency.objects.all()
    if filters.start is not None:
        records = records.filter(created_at__gte=filters.start)
    if filters.end is not None:
        records = records.filter(created_at__lt=filters.end)
    return records.filter(**_dimension_lookups(filters, batch_size=True))


def latency_records_sorted(*, filters: HistoryFilters, sort: str) -> QuerySet[JobLatency]:
    """The filtered records in the form's sort order ("-total_ms"...), newest first among equals.

    Jobs that never reached the sorted stage come last either way. SQLite already puts NULLs last when
    descending, and saying NULLS LAST there would stop it from reading the stage's index in order.
    """
    records = latency_records(filters=filters)
    column = sort.lstrip("-")
    descending = sort.startswith("-")
    nullable = JobLatency._meta.get_field(column).null
    say_nulls_last = nullable and (not descending or connections[records.db].vendor != "sqlite")
    options = {"nulls_last": True} if say_nulls_last else {}
    expression = F(column).desc(**options) if descending else F(column).asc(**options)
    return records.order_by(expression, "-pk")


def latency_hours(*, filters: HistoryFilters) -> QuerySet[LatencyHour]:
    """Hourly aggregates whose hour starts inside the range and matches the filters.

    Hours keep no batch size, so a batch size filter leaves them all out.
    """
    if filters.batch_size is not None:
        return LatencyHour.objects.none()
    hours = LatencyHour.objects.all()
    if filters.start is not None:
        hours = hours.filter(hour__gte=filters.start)
    if filters.end is not None:
        hours = hours.filter(hour__lt=filters.end)
    return hours.filter(**_dimension_lookups(filters, batch_size=False))


def _dimension_lookups(filters: HistoryFilters, *, batch_size: bool) -> dict:
    lookups = {
        "template": filters.template,
        "source": filters.source,
        "lane": filters.lane,
        "status": filters.status,
        "worker": filters.worker,
        "cache_hit": filters.cache_hit,
    }
    if batch_size:
        lookups["batch_size"] = filters.batch_size
    return {field: value for field, value in lookups.items() if value is not None}


# --- summary ------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StageSummary:
    stage: str
    label: str
    count: int  # jobs that reached this stage
    mean: float | None
    p50: float | None
    p95: float | None
    p99: float | None
    maximum: float | None


@dataclass(frozen=True)
class LatencySummary:
    count: int
    record_count: int
    hourly_count: int
    hourly_first: datetime | None  # start of the first hour read from aggregates
    hourly_end: datetime | None  # end of the last one
    hours_left_out: bool  # a batch size filter excludes the hourly aggregates
    stages: list[StageSummary]
    histogram: list[int]  # jobs per fixed bucket of total latency (buckets.BOUNDS_MS)

    @property
    def approximate(self) -> bool:
        """Percentiles come from buckets as soon as any hourly aggregate is part of the selection."""
        return self.hourly_count > 0


def latency_summary(*, filters: HistoryFilters) -> LatencySummary:
    """Count, mean, p50/p95/p99 (nearest rank) and max of each stage over the records and hourly aggregates."""
    records = latency_records(filters=filters)
    hours = latency_hours(filters=filters)
    # One pass over the records: counts, sums, maxima, and the total's histogram for the chart.
    raw = records.aggregate(
        count=Count("pk"),
        **{f"{stage}_count": Count(column) for stage, column in STAGES.items()},
        **{f"{stage}_sum": Sum(column) for stage, column in STAGES.items()},
        **{f"{stage}_max": Max(column) for stage, column in STAGES.items()},
        **bucket_aggregates(["total"]),
    )
    hourly = hours.aggregate(
        count=Sum("count", default=0),
        first=Min("hour"),
        last=Max("hour"),
        **{f"{stage}_count": Sum(f"{stage}_count", default=0) for stage in STAGES},
        **{f"{stage}_sum": Sum(f"{stage}_sum") for stage in STAGES},
        **{f"{stage}_max": Max(f"{stage}_max") for stage in STAGES},
    )
    histogram = [raw[f"total__{index}"] for index in range(BUCKET_COUNT)]
    if hourly["count"]:
        buckets = stage_bucket_counts(records=records, hours=hours, stages=list(STAGES))
        histogram = buckets["total"]
    else:
        exact = _exact_percentiles(records, {stage: raw[f"{stage}_count"] for stage in STAGES})
    stages = []
    for stage in STAGES:
        count = raw[f"{stage}_count"] + hourly[f"{stage}_count"]
        total = (raw[f"{stage}_sum"] or 0) + (hourly[f"{stage}_sum"] or 0)
        maxima = [m for m in (raw[f"{stage}_max"], hourly[f"{stage}_max"]) if m is not None]
        maximum = max(maxima) if maxima else None
        if hourly["count"]:
            values = {p: percentile_from_buckets(p, buckets[stage], maximum=maximum) for p in PERCENTILES}
        else:
            values = {p: exact.get((stage, p)) for p in PERCENTILES}
        stages.append(
            StageSummary(
                stage=stage,
                label=STAGE_LABELS[stage],
                count=count,
                mean=total / count if count else None,
                p50=values[50],
                p95=values[95],
                p99=values[99],
                maximum=maximum,
            )
        )
    return LatencySummary(
        count=raw["count"] + hourly["count"],
        record_count=raw["count"],
        hourly_count=hourly["count"],
        hourly_first=hourly["first"],
        hourly_end=hourly["last"] + timedelta(hours=1) if hourly["last"] else None,
        hours_left_out=filters.batch_size is not None and LatencyHour.objects.exists(),
        stages=stages,
        histogram=histogram,
    )


def _exact_percentiles(records: QuerySet[JobLatency], counts: dict[str, int]) -> dict[tuple[str, int], float]:
    """Nearest-rank percentiles of the records: the value at rank ceil(p/100 * N) of each stage, ascending.

    PostgreSQL computes them all in one query (percentile_disc); SQLite runs one ORDER BY stage LIMIT 1 OFFSET
    query per stage and percentile (see _sqlite_percentile).
    """
    wanted = [(stage, p) for stage, count in counts.items() if count for p in PERCENTILES]
    if not wanted:
        return {}
    if connections[records.db].vendor == "postgresql":
        row = records.aggregate(**{f"{stage}_{p}": PercentileDisc(STAGES[stage], percentile=p) for stage, p in wanted})
        return {(stage, p): row[f"{stage}_{p}"] for stage, p in wanted}
    # An estimate from the ends of the primary key (two index look-ups; COUNT(*) would read a whole index).
    ids = JobLatency.objects.order_by("pk").values_list("pk", flat=True)
    first, last = ids.first(), ids.last()
    table_rows = last - first + 1 if last is not None else 0
    # Walking a stage's covering index reads up to half the table's index entries for a median (~50 ms for a
    # million); sorting the selection costs a few µs per record: sort only selections under 1/20 of the table.
    walk = 20 * max(counts.values()) >= table_rows
    return {
        (stage, p): _sqlite_percentile(records, STAGES[stage], rank(p, counts[stage]), counts[stage], walk=walk)
        for stage, p in wanted
    }


def _sqlite_percentile(records: QuerySet[JobLatency], column: str, wanted: int, count: int, *, walk: bool) -> float:
    """The value at 1-based rank `wanted` of `count` non-empty values, read from the nearer end of the order."""
    values = records.filter(**{f"{column}__isnull": False}).values_list(column, flat=True)
    if wanted <= count // 2:
        ordered, offset = values.order_by(column), wanted - 1
    else:  # p95 from the top skips 5 % of the rows instead of 95 %
        ordered, offset = values.order_by(f"-{column}"), count - wanted
    ordered = ordered[offset : offset + 1]
    if not walk:
        return ordered.get()
    # The planner prefers a filter's index and sorts; INDEXED BY makes it read the stage's covering index in order.
    sql, params = ordered.query.sql_with_params()
    table = f'FROM "{JobLatency._meta.db_table}"'
    if sql.count(table) != 1:  # not the simple query we expect: leave the plan to SQLite
        return ordered.get()
    sql = sql.replace(table, f'{table} INDEXED BY "latency_{column}_cover"')
    with connections[records.db].cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchone()[0]


def bucket_aggregates(stages: list[str]) -> dict[str, Count]:
    """One COUNT(...) FILTER (WHERE lower <= stage < upper) per stage and bucket, named "<stage>__<index>"."""
    aggregates = {}
    for stage in stages:
        column = STAGES[stage]
        for index in range(BUCKET_COUNT):
            lower, upper = bucket_range(index)
            within = Q(**{f"{column}__gte": lower}) if index else Q(**{f"{column}__isnull": False})
            if upper is not None:
                within &= Q(**{f"{column}__lt": upper})
            aggregates[f"{stage}__{index}"] = Count("pk", filter=within)
    return aggregates


def stage_bucket_counts(
    *, records: QuerySet[JobLatency], hours: QuerySet[LatencyHour], stages: list[str]
) -> dict[str, list[int]]:
    """Jobs per fixed latency bucket for each stage: records counted by conditional aggregation, plus hours."""
    row = records.aggregate(**bucket_aggregates(stages))
    counts = {stage: [row[f"{stage}__{index}"] for index in range(BUCKET_COUNT)] for stage in stages}
    hourly = (
        LatencyHourBucket.objects.filter(hour__in=hours.values("pk"), metric__in=stages)
        .values("metric", "bucket")
        .annotate(jobs=Sum("count"))
        .order_by()
    )
    for entry in hourly:
        counts[entry["metric"]][entry["bucket"]] += entry["jobs"]
    return counts


def latency_histogram(*, filters: HistoryFilters, stage: str = "total") -> list[int]:
    """Jobs per fixed latency bucket of one stage (see buckets.BOUNDS_MS)."""
    counts = stage_bucket_counts(
        records=latency_records(filters=filters), hours=latency_hours(filters=filters), stages=[stage]
    )
    return counts[stage]


# --- timeline -----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TimelinePoint:
    start: datetime
    count: int
    mean_ms: float | None
    max_ms: float | None


@dataclass(frozen=True)
class Timeline:
    start: datetime
    end: datetime
    width_s: int
    points: list[TimelinePoint]


def timeline_slots(start: datetime, end: datetime, *, minimum_s: int = 0) -> tuple[datetime, int]:
    """The aligned start and the width of the slots that cover start..end in at most MAX_SLOTS slots.

    Slots align to the plant's wall clock (a day slot starts at local midnight), by the zone's offset at
    start: across a daylight-saving change later slots stay the same length and shift by the change. Slots of
    an hour or more align to whole hours of the offset, as the hourly aggregates they count are UTC hours."""
    span = max((end - start).total_seconds(), 1)
    width = next((w for w in SLOT_WIDTHS_S if w >= minimum_s and span / w <= MAX_SLOTS), SLOT_WIDTHS_S[-1])
    offset = int(timezone.localtime(start).utcoffset().total_seconds())
    if width >= 3600:  # hourly aggregates sit on UTC hours: a zone's half or quarter hour (India, Nepal) is left out
        offset -= offset % 3600
    origin = (int(start.timestamp()) + offset) // width * width - offset
    return datetime.fromtimestamp(origin, tz=UTC), width


def slot_starts(origin: datetime, width_s: int, end: datetime, filled: dict[int, object]) -> list[tuple[int, datetime]]:
    """Every slot from origin to end, and any filled one past end (a record stamped later than now)."""
    last = max(int((end.timestamp() - origin.timestamp()) // width_s), max(filled, default=0))
    return [(slot, origin + timedelta(seconds=slot * width_s)) for slot in range(last + 1)]


def latency_timeline(*, filters: HistoryFilters, now: datetime | None = None) -> Timeline | None:
    """Jobs, mean and max total latency per time slot, over the filters' range (records and hourly aggregates)."""
    records = latency_records(filters=filters)
    hours = latency_hours(filters=filters)
    end = filters.end or now or timezone.now()
    start = filters.start
    if start is None:
        firsts = [records.aggregate(first=Min("created_at"))["first"], hours.aggregate(first=Min("hour"))["first"]]
        firsts = [first for first in firsts if first is not None]
        if not firsts:
            return None
        start = min(firsts)
    # Hours are counted in the slot of their start: narrower slots would pile an hour's jobs onto one of them.
    origin, width = timeline_slots(start, end, minimum_s=3600 if hours.exists() else 0)
    slots: dict[int, list] = {}
    raw = (
        records.annotate(slot=TimeSlot("created_at", origin=origin, width_s=width))
        .values("slot")
        .annotate(jobs=Count("pk"), total=Sum("total_ms"), longest=Max("total_ms"))
        .order_by("slot")
    )
    hourly = (
        hours.annotate(slot=TimeSlot("hour", origin=origin, width_s=width))
        .values("slot")
        .annotate(jobs=Sum("count"), total=Sum("total_sum"), longest=Max("total_max"))
        .order_by("slot")
    )
    for entry in [*raw, *hourly]:
        jobs, total, longest = slots.get(entry["slot"], (0, 0.0, None))
        longest = entry["longest"] if longest is None else max(longest, entry["longest"] or longest)
        slots[entry["slot"]] = (jobs + entry["jobs"], total + (entry["total"] or 0), longest)
    points = []
    for slot, slot_start in slot_starts(origin, width, end, slots):
        jobs, total, longest = slots.get(slot, (0, 0.0, None))
        points.append(TimelinePoint(slot_start, count=jobs, mean_ms=total / jobs if jobs else None, max_ms=longest))
    return Timeline(start=origin, end=end, width_s=width, points=points)
