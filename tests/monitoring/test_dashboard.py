"""The live dashboard: numbers of the last minutes from the database, queue and workers from Redis."""

import time
from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from edgeportal.jobs.entry import job_submit
from edgeportal.jobs.models import Job, Rejection
from edgeportal.latency.models import JobLatency
from edgeportal.monitoring.selectors import recent_activity, worker_status


@pytest.fixture(autouse=True)
def _db(db):
    pass


@pytest.fixture
def outsider_client(client, outsider):
    client.force_login(outsider)
    return client


def refused(rule: str, *, count: int = 1, minutes_ago: int = 0) -> Rejection:
    """Refusals stored for the minute that began `minutes_ago` minutes ago, as refusals_flush stores them."""
    minute = (int(time.time()) // 60 - minutes_ago) * 60
    return Rejection.objects.create(
        rule=rule, count=count, message="m", created_at=datetime.fromtimestamp(minute, tz=UTC)
    )


def fragment(client) -> str:
    response = client.get("/dashboard/", headers={"HX-Request": "true"})
    assert response.status_code == 200
    return response.content.decode()


def finished_job(total_ms: float, *, status=Job.Status.DONE, cache_hit=False, minutes_ago: float = 0) -> JobLatency:
    job = Job.objects.create(prompt="p", max_new_tokens=8, status=status, cache_hit=cache_hit)
    latency = JobLatency.objects.create(job=job, status=status, cache_hit=cache_hit, total_ms=total_ms)
    if minutes_ago:
        JobLatency.objects.filter(pk=latency.pk).update(created_at=timezone.now() - timedelta(minutes=minutes_ago))
    return latency


def test_anonymous_users_are_sent_to_the_login_page(client):
    response = client.get("/dashboard/")
    assert response.status_code == 302 and "login/?next=" in response["Location"]


def test_every_logged_in_user_sees_the_page_which_polls_a_fragment(outsider_client):
    html = outsider_client.get("/dashboard/").content.decode()
    assert "<html" in html and "Live dashboard" in html
    assert 'hx-get="/dashboard/"' in html and 'hx-trigger="every 3s"' in html


def test_the_fragment_alone_answers_htmx_with_depths_per_lane(
    outsider_client, queue, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):  # jobs reach Redis once their row is committed
        for i in range(2):
            job_submit(prompt=f"Waiting job {i}", allow_free_prompt=True)
    html = fragment(outsider_client)
    assert html.lstrip().startswith('<section id="dashboard-live"')
    assert "<html" not in html
    assert '<strong data-testid="depth-short">2</strong>' in html
    assert '<strong data-testid="depth-long">0</strong>' in html


def test_workers_are_listed_from_their_heartbeats_with_names_escaped(outsider_client, make_worker):
    make_worker(name="<b>w1</b>@node").heartbeat()
    html = fragment(outsider_client)
    assert "&lt;b&gt;w1&lt;/b&gt;@node" in html and "<b>w1</b>" not in html
    assert '<span class="status worker-idle">idle</span>' in html
    assert "tiny-model" in html and "float32" in html and "none yet" in html


def test_a_worker_that_missed_its_heartbeats_is_shown_gone(outsider_client, queue):
    queue.redis.zadd(queue.workers_key, {"w-silent@node": time.time() - 20})  # its hash has expired
    html = fragment(outsider_client)
    assert "w-silent@node" in html
    assert '<span class="status worker-gone">gone</span>' in html


def test_a_worker_is_gone_after_a_few_seconds_without_a_heartbeat():
    now = 1_000_000.0
    beating = {"name": "w", "state": "busy", "model": "m", "dtype": "float32", "last_batch_at": str(now - 1)}
    assert worker_status({**beating, "heartbeat_at": str(now - 2)}, now=now).state == "busy"
    assert worker_status({**beating, "heartbeat_at": str(now - 7)}, now=now).state == "gone"
    assert worker_status({"name": "w", "heartbeat_at": str(now - 1)}, now=now).state == "gone"  # no hash left
    fresh = worker_status({**beating, "heartbeat_at": str(now), "last_batch_at": "0.0"}, now=now)
    assert fresh.last_batch_age_s is None and fresh.last_batch_ago == "never"


def test_with_redis_down_the_page_says_the_queue_is_unreachable(outsider_client, redis_down):
    finished_job(120)
    response = outsider_client.get("/dashboard/")
    html = response.content.decode()
    assert response.status_code == 200
    assert 'data-testid="queue-unreachable"' in html and "Queue unreachable" in html
    assert 'data-testid="depth-short"' not in html
    assert '<strong data-testid="p95">120 ms</strong>' in html  # the database still answers


def test_recent_numbers_cover_the_last_five_minutes_only():
    for total_ms in range(1, 21):  # 1 .. 20 ms
        finished_job(total_ms, cache_hit=total_ms <= 5)
    finished_job(500, status=Job.Status.FAILED)
    finished_job(900, status=Job.Status.EXPIRED)
    finished_job(99_999, minutes_ago=6)  # too old to count
    refused("too_long", count=2)
    refused("rate_limited", minutes_ago=10)

    recent = recent_activity()
    assert (recent.finished, recent.done, recent.failed, recent.expired) == (22, 20, 1, 1)
    assert recent.jobs_per_minute == pytest.approx(22 / 5)
    assert recent.p95_ms == 500  # nearest rank: the 21st of 22 sorted totals
    assert recent.cache_hit_rate == pytest.approx(100 * 5 / 22)
    assert recent.rejected == 2
    assert recent.rejections_by_rule == [{"rule": "too_long", "label": "too long", "count": 2}]


def test_refusal_rules_are_named_in_the_pages_language_with_the_code_kept_for_machines(outsider_client, queue):
    refused("queue_full", count=3)
    english = outsider_client.get("/dashboard/", HTTP_HX_REQUEST="true").content.decode()
    assert 'title="queue_full">queue full: 3' in english
    chinese = outsider_client.get(
        "/dashboard/", HTTP_HX_REQUEST="true", HTTP_ACCEPT_LANGUAGE="zh-CN,zh"
    ).content.decode()
    assert "queue full" not in chinese and 'title="queue_full">' in chinese


def test_the_fragment_shows_the_recent_numbers(outsider_client, queue):
    finished_job(40, cache_hit=True)
    finished_job(80, status=Job.Status.EXPIRED)
    refused("blocked_pattern")
    html = fragment(outsider_client)
    assert '<strong data-testid="jobs-per-minute">0.4</strong>' in html
    assert '<strong data-testid="p95">80 ms</strong>' in html
    assert '<strong data-testid="cache-hit-rate">50 %</strong>' in html
    assert '<strong data-testid="rejected">1</strong>' in html and "blocked phrase: 1" in html
    assert '<strong data-testid="expired">1</strong>' in html


def test_with_nothing_recent_the_page_shows_dashes_not_errors(outsider_client, queue):
    html = fragment(outsider_client)
    assert '<strong data-testid="p95">—</strong>' in html
    assert '<strong data-testid="cache-hit-rate">—</strong>' in html
    assert "No worker has reported in the last hour." in html
