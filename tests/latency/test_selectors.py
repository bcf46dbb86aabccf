import random
from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from edgeportal.jobs.models import Job
from edgeportal.latency import batch_reads, selectors
from edgeportal.latency.forms import HistoryFilters
from edgeportal.latency.models import JobLatency
from edgeportal.sources.services import source_create
from tests.conftest import make_template


def ids(filters: HistoryFilters) -> set[int]:
    return set(selectors.latency_records(filters=filters).values_list("pk", flat=True))


def test_each_filter_selects_only_its_records_and_filters_combine(make_record, db):
    template = make_template(slug="defect", title="Defect", body="Describe {defect}.")
    source = source_create(name="camera-c3", kind="camera")[0]
    now = timezone.now()
    plain = make_record(total_ms=10)
    old = make_record(total_ms=10, created_at=now - timedelta(days=3))
    templated = make_record(total_ms=10, template=template)
    sourced = make_record(total_ms=10, source=source, template=template)
    long = make_record(total_ms=10, lane="long")
    failed = make_record(total_ms=10, status="failed")
    batched = make_record(total_ms=10, batch_size=4)
    on_w2 = make_record(total_ms=10, worker="w2@edge")
    hit = make_record(total_ms=2, cache_hit=True)
    everyone = {r.pk for r in (plain, old, templated, sourced, long, failed, batched, on_w2, hit)}

    assert ids(HistoryFilters()) == everyone
    assert ids(HistoryFilters(start=now - timedelta(days=1))) == everyone - {old.pk}
    assert ids(HistoryFilters(end=now - timedelta(days=1))) == {old.pk}
    assert ids(HistoryFilters(template=template)) == {templated.pk, sourced.pk}
    assert ids(HistoryFilters(source=source)) == {sourced.pk}
    assert ids(HistoryFilters(lane="long")) == {long.pk}
    assert ids(HistoryFilters(status="failed")) == {failed.pk}
    assert ids(HistoryFilters(batch_size=4)) == {batched.pk}
    assert ids(HistoryFilters(worker="w2@edge")) == {on_w2.pk}
    assert ids(HistoryFilters(cache_hit=True)) == {hit.pk}
    assert ids(HistoryFilters(cache_hit=False)) == everyone - {hit.pk}
    assert ids(HistoryFilters(template=template, source=source)) == {sourced.pk}
    assert ids(HistoryFilters(template=template, status="failed")) == set()


def _records(values: list[float | None], stage: str = "total_ms", **fields):
    """Many records at once, in random order so that insertion order cannot pass for sorting."""
    values = list(values)
    random.Random(3).shuffle(values)
    jobs = Job.objects.bulk_create(Job(prompt="p", max_new_tokens=8, status="done") for _ in values)
    rows = []
    for job, value in zip(jobs, values, strict=True):
        row = {"total_ms": 1.0, **fields, stage: value}
        rows.append(JobLatency(job=job, status="done", **row))
    JobLatency.objects.bulk_create(rows)


@pytest.mark.parametrize("others", [0, 4100], ids=["whole-table", "small-part-of-the-table"])
def test_percentiles_are_the_nearest_rank_of_a_hand_computed_set(db, others):
    # 200 totals 0.5, 1.0, ... 100.0: the value of rank r is r/2, and rank = ceil(p/100 * 200) = 2p, so pX = X.
    # On SQLite a selection of most of the table walks the stage's index, a small one is sorted: same answer.
    _records([i * 0.5 for i in range(1, 201)])
    _records([1000.0 + i for i in range(others)], lane="long")
    summary = selectors.latency_summary(filters=HistoryFilters(lane="short"))
    total = summary.stages[-1]
    assert total.stage == "total" and total.count == 200 and not summary.approximate
    assert (total.p50, total.p95, total.p99, total.maximum) == (50.0, 95.0, 99.0, 100.0)
    assert total.mean == pytest.approx(50.25)


def test_percentiles_round_the_rank_up_and_skip_jobs_that_never_reached_a_stage(db):
    # Window waits 1, 3, 5, 7, 9, 11, 13 and three empty: N = 7, p50 rank ceil(3.5) = 4 -> 7; p95 rank 7 -> 13.
    _records([5, 1, 9, None, 3, 7, None, 11, 13, None], stage="window_wait_ms")
    window = {s.stage: s for s in selectors.latency_summary(filters=HistoryFilters()).stages}["window_wait"]
    assert window.count == 7
    assert (window.p50, window.p95, window.p99, window.maximum) == (7, 13, 13, 13)
    assert window.mean == pytest.approx(7)


def test_percentiles_follow_the_filters(make_record):
    for total in (10, 20, 30):
        make_record(total_ms=total, lane="long")
    make_record(total_ms=1000, lane="short")
    long = selectors.latency_summary(filters=HistoryFilters(lane="long"))
    assert long.count == 3 and long.stages[-1].p99 == 30 and long.stages[-1].maximum == 30


def test_no_records_give_an_empty_summary(db):
    summary = selectors.latency_summary(filters=HistoryFilters())
    assert summary.count == 0
    assert all(s.p50 is None and s.maximum is None and s.mean is None for s in summary.stages)


def test_the_histogram_counts_records_per_fixed_bucket(make_record):
    for total in (0.5, 3, 4, 4.99, 5, 150, 250_000):
        make_record(total_ms=total)
    counts = selectors.latency_histogram(filters=HistoryFilters())
    # buckets: <1, 1-2, 2-5, 5-10, ... 100-200 is index 7, >=100 s is the last
    assert counts[0] == 1 and counts[2] == 3 and counts[3] == 1 and counts[7] == 1 and counts[-1] == 1
    assert sum(counts) == 7


def test_the_timeline_counts_jobs_per_slot_with_their_mean_and_maximum(make_record):
    start = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    make_record(total_ms=100, created_at=start + timedelta(minutes=5))
    make_record(total_ms=300, created_at=start + timedelta(minutes=59, seconds=59))
    make_record(total_ms=50, created_at=start + timedelta(hours=2, minutes=1))
    timeline = selectors.latency_timeline(
        filters=HistoryFilters(start=start, end=start + timedelta(hours=3)), now=start + timedelta(hours=3)
    )
    assert timeline.width_s == 300  # 3 hours in 5-minute slots: 36 of them
    by_start = {p.start: p for p in timeline.points if p.count}
    five = start + timedelta(minutes=5)
    assert by_start[five] == selectors.TimelinePoint(start=five, count=1, mean_ms=100, max_ms=100)
    assert by_start[start + timedelta(minutes=55)].max_ms == 300
    assert by_start[start + timedelta(hours=2)].count == 1
    assert sum(p.count for p in timeline.points) == 3


def test_the_batch_curve_gives_inference_time_per_batch_size(db):
    from edgeportal.latency.models import BatchRecord

    now = timezone.now()
    for number, (size, ms, prompt, padded) in enumerate([(1, 300, 10, 10), (4, 800, 40, 80), (4, 1000, 40, 40)]):
        BatchRecord.objects.create(
            batch_id=f"b{number}", worker="w1", size=size, prompt_tokens=prompt, padded_tokens=padded,
            output_tokens=1, window_opened_at=now, inference_started_at=now, inference_ms=ms, window_ms=60,
            max_batch_size=8,
        )  # fmt: skip
    curve = batch_reads.batch_curve(filters=HistoryFilters(start=now - timedelta(hours=1)))
    rows = [(r.size, r.batches, r.mean_inference_ms, r.per_job_ms) for r in curve]
    assert rows == [(1, 1, 300, 300), (4, 2, 900, 225)]
    assert curve[1].padding_share == pytest.approx(1 - 80 / 120)
    _, slots = batch_reads.batch_timeline(filters=HistoryFilters(start=now - timedelta(hours=1)))
    assert sum(s.batches for s in slots) == 3 and max(s.max_size or 0 for s in slots) == 4
    assert batch_reads.batch_curve(filters=HistoryFilters(batch_size=1))[0].size == 1
    assert len(batch_reads.batch_curve(filters=HistoryFilters(batch_size=1))) == 1
