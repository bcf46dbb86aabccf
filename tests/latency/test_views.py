import csv
import io
from datetime import UTC, datetime, timedelta

import pytest
from django.test import override_settings
from django.utils import timezone

from edgeportal.jobs.models import Job
from edgeportal.latency.forms import FINISHED_CHOICES, LANE_CHOICES
from edgeportal.latency.models import BatchRecord


@pytest.fixture
def outsider_client(client, outsider):
    client.force_login(outsider)
    return client


def test_anonymous_users_are_sent_to_the_login_page(client, db):
    for url in ("/latency/", "/latency/batches/", "/latency/export.csv"):
        response = client.get(url)
        assert response.status_code == 302 and "login/?next=" in response["Location"]


def test_everyone_logged_in_sees_the_history_with_its_summary_charts_and_query_time(outsider_client, make_record):
    make_record(total_ms=120, queue_wait_ms=20, window_wait_ms=30, inference_ms=70, worker="w1@edge")
    response = outsider_client.get("/latency/")
    html = response.content.decode()
    assert response.status_code == 200
    assert response.context["summary"].count == 1
    assert 'data-testid="histogram"' in html and 'data-testid="timeline"' in html
    assert "queries took" in html and response.context["query_ms"] > 0
    assert "w1@edge" in html
    assert '<a href="/latency/">Latency</a>' in html  # the nav link
    assert "/jobs/" not in html.split('data-testid="records"')[1]  # no job links for a user without a role


def test_managers_get_links_to_the_jobs(manager_client, make_record):
    record = make_record(total_ms=120)
    assert f'href="/jobs/{record.job_id}/"' in manager_client.get("/latency/").content.decode()


def test_filters_come_from_the_query_string_and_an_htmx_request_gets_only_the_results(manager_client, make_record):
    make_record(total_ms=10, lane="long")
    make_record(total_ms=20, lane="short")
    make_record(total_ms=30, lane="short", status="failed")
    response = manager_client.get("/latency/?lane=short&status=done", headers={"HX-Request": "true"})
    html = response.content.decode()
    assert response.status_code == 200
    assert html.startswith('<section id="latency-results"') and "<html" not in html
    assert response.context["summary"].count == 1 and response.context["summary"].stages[-1].maximum == 20


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("batch_size=big", "batch_size"),
        ("batch_size=0", "batch_size"),
        ("status=lost", "status"),
        ("lane=middle", "lane"),
        ("template=no-such-template", "template"),
        ("source=nobody", "source"),
        ("cache_hit=maybe", "cache_hit"),
        ("sort=prompt", "sort"),
        ("period=forever", "period"),
        ("date_from=yesterday", "date_from"),
        ("date_from=2026-05-02T10:00&date_to=2026-05-01T10:00", "date_to"),
        ("worker=" + "w" * 201, "worker"),
    ],
)
def test_bad_filters_are_form_errors_with_400_never_a_500(manager_client, query, field):
    response = manager_client.get(f"/latency/?{query}")
    assert response.status_code == 400
    assert field in response.context["form"].errors
    assert 'data-testid="filter-errors"' in response.content.decode()
    htmx = manager_client.get(f"/latency/?{query}", headers={"HX-Request": "true"})
    assert htmx.status_code == 400 and htmx.content.decode().startswith('<section id="latency-results"')
    csv_response = manager_client.get(f"/latency/export.csv?{query}")
    assert csv_response.status_code == 400 and field in csv_response.content.decode()
    assert manager_client.get(f"/latency/batches/?{query}").status_code == 400


def test_user_text_is_escaped_on_the_page(manager_client, make_record):
    make_record(total_ms=5, worker="<script>alert(1)</script>")
    html = manager_client.get("/latency/").content.decode()
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_records_are_sorted_and_paginated(manager_client, make_record):
    for total in range(1, 56):
        make_record(total_ms=total)
    first = manager_client.get("/latency/?sort=-total_ms")
    assert [r.total_ms for r in first.context["rows"]][:3] == [55, 54, 53] and len(first.context["rows"]) == 50
    second = manager_client.get("/latency/?sort=-total_ms&page=2")
    assert [r.total_ms for r in second.context["rows"]] == [5, 4, 3, 2, 1]
    assert manager_client.get("/latency/?sort=total_ms").context["rows"][0].total_ms == 1


def test_the_csv_holds_exactly_the_filtered_records(manager_client, make_record):
    at = datetime(2026, 5, 1, 10, 0, tzinfo=UTC)
    wanted = make_record(total_ms=12.5, queue_wait_ms=2.5, lane="long", worker="w1", batch_size=3, created_at=at)
    make_record(total_ms=99, lane="short", worker="w1", created_at=at)
    make_record(total_ms=7, lane="long", worker="w1", created_at=at - timedelta(days=2))
    response = manager_client.get("/latency/export.csv?lane=long&date_from=2026-05-01T00:00&date_to=2026-05-02T00:00")
    assert response.status_code == 200 and response.streaming
    assert response["Content-Type"].startswith("text/csv")
    assert response["Content-Disposition"].startswith('attachment; filename="latency-')
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert len(rows) == 1
    row = rows[0]
    assert row["job_id"] == str(wanted.job_id) and row["lane"] == "long" and row["batch_size"] == "3"
    assert (row["total_ms"], row["queue_wait_ms"], row["window_wait_ms"]) == ("12.5", "2.5", "")
    assert row["created_at"] == at.isoformat() and row["status"] == "done" and row["cache_hit"] == "False"


def test_csv_cells_that_a_spreadsheet_would_run_as_formulas_arrive_as_text(manager_client, make_record):
    make_record(total_ms=-0.5, worker='=HYPERLINK("http://evil.example","w1")', lane="short")
    make_record(total_ms=3, worker="@SUM(A1)", lane="short")
    rows = list(
        csv.DictReader(io.StringIO(b"".join(manager_client.get("/latency/export.csv").streaming_content).decode()))
    )
    assert sorted(row["worker"] for row in rows) == ['\'=HYPERLINK("http://evil.example","w1")', "'@SUM(A1)"]
    assert sorted(row["total_ms"] for row in rows) == ["-0.5", "3.0"]  # numbers stay numbers


def test_the_batch_view_shows_the_batching_curve(outsider_client, db):
    now = timezone.now()
    for number, size in enumerate([1, 2, 2, 8]):
        BatchRecord.objects.create(
            batch_id=f"b{number}", worker="w1", size=size, prompt_tokens=10 * size, padded_tokens=12 * size,
            output_tokens=size, window_opened_at=now, inference_started_at=now, inference_ms=100 + 50 * size,
            window_ms=60, max_batch_size=8,
        )  # fmt: skip
    response = outsider_client.get("/latency/batches/")
    html = response.content.decode()
    assert response.status_code == 200
    assert [row.size for row in response.context["curve"]] == [1, 2, 8]
    assert response.context["batch_count"] == 4
    for testid in ("batch-size", "padding", "batch-curve"):
        assert f'data-testid="{testid}"' in html
    only_large = outsider_client.get("/latency/batches/?batch_size=8", headers={"HX-Request": "true"})
    assert only_large.context["batch_count"] == 1 and "<html" not in only_large.content.decode()


def test_jobs_that_never_reached_the_sorted_stage_come_last_either_way(manager_client, make_record):
    make_record(total_ms=1, queue_wait_ms=None, batch_size=None)
    make_record(total_ms=2, queue_wait_ms=5, batch_size=2)
    make_record(total_ms=3, queue_wait_ms=9, batch_size=1)
    descending = manager_client.get("/latency/?sort=-queue_wait_ms").context["rows"]
    assert [r.queue_wait_ms for r in descending] == [9, 5, None]
    ascending = manager_client.get("/latency/?sort=batch_size").context["rows"]
    assert [r.batch_size for r in ascending] == [1, 2, None]


def test_the_batch_page_offers_only_the_filters_a_batch_has(manager_client, db):
    html = manager_client.get("/latency/batches/").content.decode()
    assert 'name="lane"' in html and 'name="worker"' in html and 'name="batch_size"' in html
    assert 'name="status"' not in html and 'name="template"' not in html and 'name="cache_hit"' not in html


@override_settings(TIME_ZONE="Europe/Berlin")
def test_the_history_page_shows_local_times_while_the_csv_keeps_iso_8601_with_an_offset(manager_client, make_record):
    at = datetime(2026, 7, 1, 10, 0, tzinfo=UTC)
    make_record(total_ms=12.0, created_at=at)
    page = manager_client.get("/latency/?date_from=2026-07-01T11:30&date_to=2026-07-01T12:30").content.decode()
    assert ">2026-07-01 12:00:00 CEST</time>" in page  # the record, in the plant's time
    assert "local times (Europe/Berlin)" in page and 'data-testid="plant-zone">Europe/Berlin<' in page
    response = manager_client.get("/latency/export.csv?date_from=2026-07-01T11:30&date_to=2026-07-01T12:30")
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert [row["created_at"] for row in rows] == ["2026-07-01T10:00:00+00:00"]


def test_the_filter_choices_are_the_jobs_own():
    # latency sits below jobs, so its form spells out Job's lanes and final statuses.
    assert LANE_CHOICES == Job.Lane.choices
    assert FINISHED_CHOICES == [(status.value, status.label) for status in Job.FINISHED]
