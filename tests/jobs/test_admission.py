"""Deadlines, priorities and admission control at the entry, with the real Redis (no worker needed)."""

import time

import pytest

from edgeportal.jobs.models import Job, Rejection
from edgeportal.jobs.queueing import get_settings_store
from edgeportal.sources.models import Source
from inference.admission import admission_estimate
from tests.conftest import make_template

# Real commits: jobs reach Redis only once their row is committed.
pytestmark = pytest.mark.django_db(transaction=True)


def measured(queue, lane, batch_ms):
    """As if workers had measured batches of exactly batch_ms (no deviation)."""
    queue.redis.hset(queue.stats, mapping={f"batch_ms:{lane}": batch_ms, f"batch_dev_ms:{lane}": 0})


def test_a_job_gets_the_default_deadline_normal_priority_and_the_short_lane(api):
    body = api.post({"prompt": "Describe the dent."}).json()
    job = Job.objects.get(pk=body["id"])
    assert (body["priority"], body["lane"]) == ("normal", "short")
    assert abs((job.deadline_at - job.created_at).total_seconds() - 10.0) < 0.05
    shown = api.get(job.pk).json()
    assert shown["deadline_at"] == job.deadline_at.isoformat() and shown["lane"] == "short"


def test_the_request_deadline_wins_over_the_source_and_the_source_over_the_template(api):
    make_template(slug="notice", title="Notice", body="Write a notice for line {line}.", deadline_ms=20_000)

    def budget(**extra):
        job = Job.objects.get(pk=api.post({"template": "notice", "variables": {"line": "A"}, **extra}).json()["id"])
        return round((job.deadline_at - job.created_at).total_seconds(), 1)

    assert budget() == 20.0
    Source.objects.update(deadline_ms=5_000)
    assert budget() == 5.0
    assert budget(deadline_ms=2_500) == 2.5
    assert api.post({"prompt": "x", "deadline_ms": 400_000}).status_code == 400  # above max_deadline_ms


def test_a_long_prompt_goes_to_the_long_lane(api):
    get_settings_store().update(long_prompt_tokens=50)
    body = api.post({"prompt": "Summarise this shift log: " + "motor 3 overheated again, " * 40}).json()
    assert body["lane"] == "long"
    assert Job.objects.get(pk=body["id"]).lane == "long"


def test_a_full_queue_answers_429_with_retry_after_and_stores_the_rejection(api, queue):
    get_settings_store().update(queue_limit=2)
    assert api.post({"prompt": "one"}).status_code == 202
    assert api.post({"prompt": "two"}).status_code == 202
    response = api.post({"prompt": "three"})
    assert response.status_code == 429
    assert int(response["Retry-After"]) >= 1
    error = response.json()["error"]
    assert error["code"] == "queue_full" and "2 jobs waiting" in error["message"]
    assert Rejection.objects.get().rule == "queue_full"
    assert Job.objects.count() == 2 and queue.depth() == 2


def test_a_job_that_cannot_meet_its_deadline_is_refused_before_it_is_stored(api, queue):
    measured(queue, "short", 2_000)  # a batch takes two seconds
    assert api.post({"prompt": "relaxed", "deadline_ms": 10_000}).status_code == 202
    response = api.post({"prompt": "hurried", "deadline_ms": 1_000})
    assert response.status_code == 429
    assert response.json()["error"]["code"] == "deadline_unreachable"
    assert "after its 1000 ms deadline" in response.json()["error"]["message"]
    assert int(response["Retry-After"]) >= 1
    assert Job.objects.count() == 1 and Rejection.objects.get().rule == "deadline_unreachable"


def test_higher_priority_waits_behind_fewer_jobs(queue, api):
    get_settings_store().update(max_batch_size=1)
    measured(queue, "short", 1_000)
    for i in range(4):  # four batches of a second each: the fourth finishes just inside five seconds
        assert api.post({"prompt": f"check {i}", "deadline_ms": 5_000}).status_code == 202
    settings = get_settings_store().current()
    low = admission_estimate(queue, settings, lane="short", priority="low", deadline_ms=5_000)
    high = admission_estimate(queue, settings, lane="short", priority="high", deadline_ms=5_000)
    assert (low.ahead, high.ahead) == (4, 0)
    assert high.finish_ms == pytest.approx(1_000 + settings.window_ms)
    assert api.post({"prompt": "weekly report", "priority": "low", "deadline_ms": 5_000}).status_code == 429
    assert api.post({"prompt": "line 2 stopped", "priority": "high", "deadline_ms": 5_000}).status_code == 202


def test_the_estimate_shares_the_work_among_live_workers(queue):
    settings = get_settings_store().current()
    measured(queue, "short", 1_000)
    for name in ("w1", "w2"):
        queue.redis.zadd(queue.lane_workers_key("short"), {name: time.time()})
    queue.redis.zadd(queue.lane_workers_key("short"), {"gone": time.time() - 60})
    queue.redis.zadd(queue.lane_workers_key("long"), {"long-only": time.time()})  # does not serve short jobs
    estimate = admission_estimate(queue, settings, lane="short", priority="normal", deadline_ms=10_000)
    assert estimate.workers == 2 and estimate.finish_ms == pytest.approx(500 + settings.window_ms)
    queue.redis.zadd(queue.leased, {"99": 1})  # a batch is running: its remaining time counts too
    estimate = admission_estimate(queue, settings, lane="short", priority="normal", deadline_ms=10_000)
    assert estimate.finish_ms == pytest.approx(1_000 + settings.window_ms)


def test_manager_form_takes_priority_and_deadline(manager_client):
    make_template(slug="stop", title="Line stop", body="Line {line} stopped.")
    response = manager_client.post(
        "/jobs/new/", {"template": "stop", "var_line": "B", "priority": "high", "deadline_ms": "4000"}
    )
    job = Job.objects.get()
    assert response.status_code == 302 and job.priority == "high"
    assert round((job.deadline_at - job.created_at).total_seconds()) == 4
    response = manager_client.post("/jobs/new/", {"template": "stop", "var_line": "B", "priority": "urgent"})
    assert response.status_code == 400 and Job.objects.count() == 1
