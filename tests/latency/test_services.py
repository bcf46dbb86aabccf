import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from edgeportal.jobs.models import Job, Rejection
from edgeportal.jobs.record_retention import old_records_prune
from edgeportal.jobs.tasks import roll_up_old_latency
from edgeportal.latency import selectors
from edgeportal.latency.buckets import BOUNDS_MS
from edgeportal.latency.forms import HistoryFilters
from edgeportal.latency.models import BatchRecord, JobLatency, LatencyHour
from edgeportal.latency.services import latency_roll_up

NOW = datetime(2026, 6, 30, 12, 30, tzinfo=UTC)
OLD_HOUR = datetime(2026, 5, 1, 8, 0, tzinfo=UTC)  # 60 days before NOW


@pytest.fixture
def old_and_new(make_record):
    """Three old records in one hour and lane, one old in another lane, two recent ones."""
    old = [
        make_record(total_ms=40, queue_wait_ms=3, created_at=OLD_HOUR + timedelta(minutes=1), worker="w1"),
        make_record(total_ms=60, queue_wait_ms=5, created_at=OLD_HOUR + timedelta(minutes=30), worker="w1"),
        make_record(total_ms=700, created_at=OLD_HOUR + timedelta(minutes=59, seconds=59), worker="w1"),
        make_record(total_ms=9, lane="long", created_at=OLD_HOUR + timedelta(minutes=2), worker="w1"),
    ]
    recent = [
        make_record(total_ms=15, created_at=NOW - timedelta(days=1), worker="w1"),
        make_record(total_ms=25, created_at=NOW - timedelta(days=29, hours=23), worker="w1"),
    ]
    return old, recent


def test_the_roll_up_folds_old_records_into_hourly_aggregates_and_deletes_them(old_and_new):
    _, recent = old_and_new
    assert latency_roll_up(older_than_days=30, now=NOW) == 4

    assert set(JobLatency.objects.values_list("pk", flat=True)) == {r.pk for r in recent}
    short = LatencyHour.objects.get(lane="short")
    assert (short.hour, short.status, short.worker, short.cache_hit) == (OLD_HOUR, "done", "w1", False)
    assert (short.count, short.total_count, short.total_sum, short.total_max) == (3, 3, 800, 700)
    assert (short.queue_wait_count, short.queue_wait_sum, short.queue_wait_max) == (2, 8, 5)
    assert (short.inference_count, short.inference_max) == (0, None)
    buckets = {(b.metric, b.bucket): b.count for b in short.buckets.all()}
    assert buckets == {
        ("total", BOUNDS_MS.index(50)): 1,  # 40 ms: 20-50
        ("total", BOUNDS_MS.index(100)): 1,  # 60 ms: 50-100
        ("total", BOUNDS_MS.index(1000)): 1,  # 700 ms: 500-1000
        ("queue_wait", BOUNDS_MS.index(5)): 1,  # 3 ms: 2-5
        ("queue_wait", BOUNDS_MS.index(10)): 1,  # 5 ms: 5-10
    }
    assert LatencyHour.objects.get(lane="long").count == 1


def test_a_second_roll_up_changes_nothing_and_late_records_join_their_hour(old_and_new, make_record):
    latency_roll_up(older_than_days=30, now=NOW)
    assert latency_roll_up(older_than_days=30, now=NOW) == 0
    make_record(total_ms=1000, created_at=OLD_HOUR + timedelta(minutes=10), worker="w1")
    assert latency_roll_up(older_than_days=30, now=NOW) == 1
    short = LatencyHour.objects.get(lane="short")
    assert (short.count, short.total_sum, short.total_max) == (4, 1800, 1000)
    assert short.buckets.get(metric="total", bucket=BOUNDS_MS.index(1000)).count == 1
    assert short.buckets.get(metric="total", bucket=BOUNDS_MS.index(2000)).count == 1


def test_the_cutoff_is_a_whole_hour_so_no_hour_is_split(make_record):
    cutoff_hour = datetime(2026, 5, 31, 12, 0, tzinfo=UTC)  # NOW - 30 days, floored to the hour
    before = make_record(total_ms=1, created_at=cutoff_hour - timedelta(seconds=1))
    after = make_record(total_ms=1, created_at=cutoff_hour + timedelta(minutes=29))  # older than 30 days, same hour
    latency_roll_up(older_than_days=30, now=NOW)
    assert list(JobLatency.objects.values_list("pk", flat=True)) == [after.pk]
    assert LatencyHour.objects.get().hour == cutoff_hour - timedelta(hours=1) and before.pk


def test_the_beat_task_uses_the_configured_retention(make_record, settings):
    settings.EDGE_LATENCY_RETENTION_DAYS = 2
    old = make_record(total_ms=1, created_at=timezone.now() - timedelta(days=3))
    kept = make_record(total_ms=1, created_at=timezone.now() - timedelta(days=1))
    old_batch = make_batch("old", timezone.now() - timedelta(days=3))
    assert roll_up_old_latency() == 1  # the task's own function, run directly
    assert not BatchRecord.objects.filter(pk=old_batch.pk).exists()  # the same retention
    assert list(JobLatency.objects.values_list("pk", flat=True)) == [kept.pk] and old.pk
    schedule = settings.CELERY_BEAT_SCHEDULE["roll-up-old-latency"]
    assert schedule["task"] == roll_up_old_latency.name == "edgeportal.latency.tasks.roll_up_old_latency"


def make_batch(batch_id: str, created_at: datetime) -> BatchRecord:
    at = created_at
    batch = BatchRecord.objects.create(
        batch_id=batch_id, worker="w1", size=1, prompt_tokens=5, padded_tokens=5, output_tokens=3,
        window_opened_at=at, inference_started_at=at, inference_ms=100, window_ms=60, max_batch_size=8,
    )  # fmt: skip
    BatchRecord.objects.filter(pk=batch.pk).update(created_at=at)
    return batch


def test_batch_records_and_refusals_older_than_the_retention_are_deleted(db):
    old_batch, new_batch = make_batch("old", OLD_HOUR), make_batch("new", NOW - timedelta(days=1))
    job = Job.objects.create(prompt="p", max_new_tokens=8, status="done", batch=old_batch, worker="w1")
    for at in (OLD_HOUR, NOW - timedelta(days=1)):
        Rejection.objects.create(rule="queue_full", message="full", created_at=at)
    assert old_records_prune(older_than_days=30, now=NOW) == (1, 1)
    assert list(BatchRecord.objects.values_list("batch_id", flat=True)) == [new_batch.batch_id]
    assert Rejection.objects.get().created_at == NOW - timedelta(days=1)
    job.refresh_from_db()
    assert job.batch is None and job.worker == "w1"  # the job stays, with its own record of where it ran


def test_the_history_reads_records_and_hours_together_with_approximate_percentiles(old_and_new):
    latency_roll_up(older_than_days=30, now=NOW)
    summary = selectors.latency_summary(filters=HistoryFilters())
    assert (summary.count, summary.record_count, summary.hourly_count) == (6, 2, 4)
    assert summary.approximate
    assert (summary.hourly_first, summary.hourly_end) == (OLD_HOUR, OLD_HOUR + timedelta(hours=1))
    total = {s.stage: s for s in summary.stages}["total"]
    assert total.maximum == 700 and total.mean == pytest.approx((40 + 60 + 700 + 9 + 15 + 25) / 6)
    # Sorted: 9, 15, 25, 40, 60, 700; p50 is rank 3 (25), the only job in the 20-50 bucket with 40:
    # the bucket holds 25 and 40, rank 3 is its 1st of 2 -> 20 + 30 * 1/2.
    assert total.p50 == pytest.approx(35)
    assert total.p99 == 700  # the open top bucket reads up to the known maximum
    assert sum(selectors.latency_histogram(filters=HistoryFilters())) == 6
    long = selectors.latency_summary(filters=HistoryFilters(lane="long"))
    assert long.count == 1 and long.hourly_count == 1


def test_a_batch_size_filter_leaves_the_hours_out_and_says_so(old_and_new):
    latency_roll_up(older_than_days=30, now=NOW)
    summary = selectors.latency_summary(filters=HistoryFilters(batch_size=4))
    assert summary.hourly_count == 0 and summary.hours_left_out


def test_the_timeline_places_hourly_aggregates_in_their_hour(old_and_new):
    latency_roll_up(older_than_days=30, now=NOW)
    timeline = selectors.latency_timeline(
        filters=HistoryFilters(start=OLD_HOUR - timedelta(hours=2), end=OLD_HOUR + timedelta(hours=2))
    )
    assert timeline.width_s == 3600
    point = next(p for p in timeline.points if p.start == OLD_HOUR)
    assert point.count == 4 and point.max_ms == 700 and point.mean_ms == pytest.approx(809 / 4)


@pytest.mark.parametrize("value", ["soon", "0", "-3"])
def test_a_bad_retention_stops_the_process_with_a_message_naming_the_variable(value):
    env = {**os.environ, "EDGE_LATENCY_RETENTION_DAYS": value, "DJANGO_SETTINGS_MODULE": "edgeportal.settings"}
    result = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        env=env, cwd=Path(__file__).resolve().parents[2], capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode != 0
    assert "EDGE_LATENCY_RETENTION_DAYS must be" in result.stderr


def test_a_job_whose_record_was_rolled_up_still_shows_on_the_job_pages(old_and_new, manager_client):
    old, _ = old_and_new
    latency_roll_up(older_than_days=30, now=NOW)
    assert manager_client.get(f"/jobs/{old[0].job_id}/").status_code == 200
    assert manager_client.get("/jobs/").status_code == 200
