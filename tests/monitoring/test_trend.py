"""The dashboard's fifteen-minute trend: counted in Redis per minute as jobs finish and requests are refused,
read back in one round trip and drawn as charts, without reading any job table."""

import re

import pytest

from edgeportal.core import metrics
from edgeportal.jobs.entry import job_submit
from edgeportal.jobs.models import Job
from edgeportal.latency.models import JobLatency
from edgeportal.monitoring.trend import MINUTES, parse_minute, trend_depths, trend_finished, trend_read, trend_refused


@pytest.fixture
def outsider_client(client, outsider):
    client.force_login(outsider)
    return client


def latency(total_ms, *, status="done", cache_hit=False):
    return JobLatency(status=status, cache_hit=cache_hit, total_ms=total_ms)  # never saved: the trend needs none


def test_finished_jobs_refusals_and_depths_land_in_the_current_minute(queue):
    trend_finished([latency(120), latency(180, cache_hit=True), latency(None, status="expired")])
    trend_finished([latency(3_000, status="failed")])
    trend_refused("queue_full")
    trend_refused("queue_full")
    trend_refused("blocked_pattern")
    trend_depths({"short": 3, "long": 0})
    trend_depths({"short": 1, "long": 2})  # the minute keeps the deepest seen
    minutes = trend_read()
    assert len(minutes) == MINUTES
    now = _together(minutes)  # the writes may straddle a minute's end
    assert now.finished == {"done": 2, "expired": 1, "failed": 1} and now.jobs == 4
    assert now.cache_hit_pct == 25 and now.refused == {"queue_full": 2, "blocked_pattern": 1}
    assert now.depths == {"short": 3, "long": 2}
    assert 100 <= now.percentile_ms(50) <= 200 and 2_000 <= now.percentile_ms(95) <= 5_000  # bucket bounds
    assert (minutes[-1].start - minutes[0].start).total_seconds() == (MINUTES - 1) * 60


def _together(minutes):
    """The minutes added up into one (the depths: the deepest), as if they were one."""
    together = parse_minute(0, [])
    for minute in minutes:
        for status, count in minute.finished.items():
            together.finished[status] = together.finished.get(status, 0) + count
        for rule, count in minute.refused.items():
            together.refused[rule] = together.refused.get(rule, 0) + count
        for lane, depth in minute.depths.items():
            together.depths[lane] = max(depth, together.depths.get(lane, 0))
        together.cache_hits += minute.cache_hits
        together.buckets = [a + b for a, b in zip(together.buckets, minute.buckets, strict=True)]
    return together


def test_a_minute_without_anything_has_no_percentile_and_no_depth(queue):
    empty = trend_read()[-1]
    assert empty.percentile_ms(95) is None and empty.depths == {} and empty.cache_hit_pct is None


def test_parsing_ignores_what_it_does_not_know():
    minute = parse_minute(29_000_000, [b"jobs:done", b"2", b"b:99", b"5", b"colour", b"1", "depth:short", "4"])
    assert minute.finished == {"done": 2} and sum(minute.buckets) == 0 and minute.depths == {"short": 4}


def test_metrics_hooks_feed_the_trend_once_the_transaction_commits(queue, db, django_capture_on_commit_callbacks):
    job = Job.objects.create(prompt="p", max_new_tokens=8, status="done")
    record = JobLatency.objects.create(job=job, status="done", total_ms=42.0)
    with django_capture_on_commit_callbacks(execute=True):
        metrics.jobs_finished([record])
        metrics.job_rejected("deadline_unreachable")
    now = _together(trend_read())
    assert now.finished == {"done": 1} and now.refused == {"deadline_unreachable": 1}


def test_the_dashboard_draws_the_trend_and_samples_the_depth_it_shows(outsider_client, queue):
    trend_finished([latency(80), latency(900)])
    trend_refused("queue_full")
    html = outsider_client.get("/dashboard/", headers={"HX-Request": "true"}).content.decode()
    for chart in ("depth", "latency", "jobs", "refusals", "cache"):
        assert f'data-testid="trend-{chart}"' in html
    assert re.search(r'data-testid="trend-jobs" data-points="\d+"', html)
    assert _together(trend_read()).depths == {"short": 0, "long": 0}  # this very read sampled the queue


def test_the_trend_reads_no_database_table(outsider_client, queue, django_assert_max_num_queries):
    trend_finished([latency(80)])
    from edgeportal.monitoring.selectors import dashboard_trend

    with django_assert_max_num_queries(0):
        charts = dashboard_trend()
    assert [chart.name for chart in charts] == ["depth", "latency", "jobs", "refusals", "cache"]


def test_with_redis_down_the_dashboard_answers_without_the_trend(outsider_client, redis_down):
    response = outsider_client.get("/dashboard/")
    assert response.status_code == 200 and 'data-testid="trend"' not in response.content.decode()


@pytest.mark.django_db(transaction=True)
def test_a_worker_card_says_what_it_runs_now_and_its_last_batch(outsider_client, make_worker):
    worker = make_worker(name="w-card")
    for number in range(3):
        job_submit(prompt=f"Line {number} restarts.", allow_free_prompt=True)
    assert worker.batch_step() is True
    worker.heartbeat()
    html = outsider_client.get("/dashboard/", headers={"HX-Request": "true"}).content.decode()
    card = html.split('data-testid="worker"')[1]
    assert "short, long" in card and "no batch" in card
    assert re.search(r"3 jobs in \d+ ms \(short lane\), \d+ s ago", card)
