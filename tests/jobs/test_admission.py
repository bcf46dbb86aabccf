"""Deadlines, priorities and admission control at the entry, with the real Redis (no worker needed)."""

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connection
from tokenizers import Tokenizer

from edgeportal.core.queueing import get_settings_store
from edgeportal.jobs.entry import JobRejected, job_submit
from edgeportal.jobs.models import Job
from edgeportal.sources.models import Source
from edgeportal.sources.services import source_create
from inference.admission import admission_estimate
from inference.batch_time import batch_estimate_ms
from inference.scheduler import collect_window
from inference.settings import SchedulerSettings
from inference.store.queue import QueuedJob
from tests.conftest import make_template, recent_refusals

# Real commits: jobs reach Redis only once their row is committed.
pytestmark = pytest.mark.django_db(transaction=True)


def alive(queue):
    """A worker's heartbeat that stays fresh (6 s) however slowly a busy machine runs the test."""
    return queue.now() + 60


def measured(queue, lane, batch_ms):
    """As if workers had measured batches of exactly batch_ms (no deviation)."""
    queue.redis.hset(queue.stats, mapping={f"batch_ms:{lane}": batch_ms, f"batch_dev_ms:{lane}": 0})


def test_a_job_gets_the_default_deadline_normal_priority_and_the_short_lane(api):
    body = api.post({"prompt": "Describe the dent."}).json()
    job = Job.objects.get(pk=body["id"])
    assert (body["priority"], body["lane"]) == ("normal", "short")
    # The deadline counts from the request; the row is stamped a little later (admission, a busy machine).
    assert abs((job.deadline_at - job.created_at).total_seconds() - 10.0) < 0.5
    shown = api.get(job.pk).json()
    assert shown["deadline_at"] == job.deadline_at.isoformat() and shown["lane"] == "short"


def test_the_request_deadline_wins_over_the_source_and_the_source_over_the_template(api):
    make_template(slug="notice", title="Notice", body="Write a notice for line {line}.", deadline_ms=20_000)

    def budget(**extra):
        job = Job.objects.get(pk=api.post({"template": "notice", "variables": {"line": "A"}, **extra}).json()["id"])
        return round((job.deadline_at - job.created_at).total_seconds(), 1)

    assert budget() == 20.0
    source = Source.objects.get()
    source.deadline_ms = 5_000
    source.save()  # as the admin saves it: web processes re-read the sources they keep (core.lookups)
    assert budget() == 5.0
    assert budget(deadline_ms=2_500) == 2.5
    assert api.post({"prompt": "x", "deadline_ms": 400_000}).status_code == 400  # above max_deadline_ms


def test_a_long_prompt_goes_to_the_long_lane(api):
    get_settings_store().update(long_prompt_tokens=50)
    body = api.post({"prompt": "Summarise this shift log: " + "motor 3 overheated again, " * 40}).json()
    assert body["lane"] == "long"
    job = Job.objects.get(pk=body["id"])
    assert job.lane == "long"
    assert abs((job.deadline_at - job.created_at).total_seconds() - 30.0) < 0.5  # the long lane's own default


def test_a_template_that_may_write_a_long_answer_goes_to_the_long_lane_with_its_deadline(api):
    make_template(slug="report", title="Report", body="Write the shift report for line {line}.", max_new_tokens=512)
    make_template(slug="notice", title="Notice", body="Write a notice for line {line}.", max_new_tokens=64)
    long_output = api.post({"template": "report", "variables": {"line": "A"}}).json()
    assert long_output["lane"] == "long"
    job = Job.objects.get(pk=long_output["id"])
    assert abs((job.deadline_at - job.created_at).total_seconds() - 30.0) < 0.5  # the long lane's own default
    assert api.post({"template": "notice", "variables": {"line": "A"}}).json()["lane"] == "short"
    get_settings_store().update(long_output_tokens=600)  # a setting (tuning page, EDGE_LONG_OUTPUT_TOKENS)
    assert api.post({"template": "report", "variables": {"line": "A"}}).json()["lane"] == "short"


def test_admission_plans_a_jobs_batch_for_its_output_limit(api, queue):
    # Batches that decode 32 steps of 20 ms; a worker busy for a second more.
    queue.redis.hset(queue.stats, mapping={"batch_ms:short": 1_000, "batch_dev_ms:short": 0,
                                           "steps:short": 32, "step_ms:short": 20})  # fmt: skip
    queue.redis.zadd(queue.lane_workers_key("short"), {"w1": alive(queue)})
    queue.set_busy("w1", 1_000)
    make_template(slug="brief", title="Brief", body="Describe defect {code}.", max_new_tokens=32)
    make_template(slug="detailed", title="Detailed", body="Describe defect {code}.", max_new_tokens=200)
    # About 2.1 s planned for the first (a second's wait, its batch, a window): it keeps a 3 s deadline. The
    # second may write 168 steps more (3.4 s): it cannot, and is refused at once rather than left to miss it.
    assert api.post({"template": "brief", "variables": {"code": "D1"}, "deadline_ms": 3_000}).status_code == 202
    refused = api.post({"template": "detailed", "variables": {"code": "D1"}, "deadline_ms": 3_000})
    assert refused.status_code == 429 and refused.json()["error"]["code"] == "deadline_unreachable"
    assert api.post({"template": "detailed", "variables": {"code": "D1"}, "deadline_ms": 8_000}).status_code == 202


@pytest.mark.parametrize(
    ("prompt", "lane"),
    [
        ("0 1 2 3 4 5 6 7 8 9 " * 6, "long"),  # 119 characters (the fallback says 30 tokens), 119 real tokens
        ("inspection " * 40, "short"),  # 439 characters (the fallback says 110 tokens), 41 real tokens
    ],
)
def test_the_lane_follows_the_real_token_count_of_the_models_tokenizer(api, tiny_model_path, prompt, lane):
    get_settings_store().update(long_prompt_tokens=100)
    tokenizer = Tokenizer.from_file(str(tiny_model_path / "tokenizer.json"))
    real_tokens = len(tokenizer.encode(prompt.strip(), add_special_tokens=False).ids)
    fallback_tokens = len(prompt.strip()) // 4 + 1
    assert (real_tokens >= 100) != (fallback_tokens >= 100)  # the two counts pick different lanes
    body = api.post({"prompt": prompt}).json()
    assert body["lane"] == lane
    assert Job.objects.get(pk=body["id"]).prompt_tokens == real_tokens


def test_the_long_lane_default_deadline_is_a_setting_and_never_above_the_longest(api):
    get_settings_store().update(long_prompt_tokens=50, long_deadline_ms=45_000)
    log = "Summarise this shift log: " + "motor 3 overheated again, " * 40

    def budget(**extra):
        job = Job.objects.get(pk=api.post({"prompt": log, **extra}).json()["id"])
        return round((job.deadline_at - job.created_at).total_seconds(), 1)

    assert budget() == 45.0
    assert budget(deadline_ms=12_000) == 12.0  # the request's own still wins
    get_settings_store().update(max_deadline_ms=40_000)
    assert budget() == 40.0


def test_a_full_queue_answers_429_with_retry_after_and_stores_the_rejection(api, queue):
    get_settings_store().update(queue_limit=2, source_share_pct=100)  # one source may fill it
    measured(queue, "short", 2_500)
    assert api.post({"prompt": "one"}).status_code == 202
    assert api.post({"prompt": "two"}).status_code == 202
    response = api.post({"prompt": "three"})
    assert response.status_code == 429
    assert response["Retry-After"] == "3"  # one batch (2.5 s) frees room
    error = response.json()["error"]
    assert error["code"] == "queue_full" and "2 jobs waiting" in error["message"]
    assert recent_refusals() == {"queue_full": 1}
    assert Job.objects.count() == 2 and queue.depth() == 2


def test_a_source_that_fills_its_share_of_the_queue_gets_429_while_other_sources_are_admitted(api, queue, make_worker):
    get_settings_store().update(queue_limit=4, source_share_pct=50)  # two waiting jobs per sender
    _, other = source_create(name="plc-b", kind="plc")
    assert api.post({"prompt": "one", "deadline_ms": 400}).status_code == 202
    assert api.post({"prompt": "two"}).status_code == 202
    refused = api.post({"prompt": "three"})
    settings = get_settings_store().current()
    planned = admission_estimate(queue, settings, lane="short", priority="normal", deadline_ms=10_000, tokens=4)
    assert refused.status_code == 429 and int(refused["Retry-After"]) == planned.retry_after_s  # a batch frees room
    error = refused.json()["error"]
    assert error["code"] == "source_share" and "2 jobs waiting" in error["message"] and "50 %" in error["message"]
    assert recent_refusals() == {"source_share": 1}
    assert api.post({"prompt": "four"}, token=other).status_code == 202  # the queue still has room for others
    time.sleep(0.5)
    assert make_worker().expiry_step() is True  # "one" expired: it no longer waits
    assert api.post({"prompt": "five"}).status_code == 202
    assert api.post({"prompt": "six"}).status_code == 429
    [taken] = collect_window(queue, "w", lambda: SchedulerSettings(window_ms=0, max_batch_size=1)).jobs
    assert Job.objects.get(pk=taken.job_id).prompt == "two"  # taken by a worker: no longer waiting
    assert api.post({"prompt": "seven"}).status_code == 202


def test_each_person_has_a_share_of_their_own(manager, admin_user):
    get_settings_store().update(queue_limit=2, source_share_pct=50)
    job_submit(prompt="one", user=manager, allow_free_prompt=True)
    with pytest.raises(JobRejected) as refused:
        job_submit(prompt="two", user=manager, allow_free_prompt=True)
    assert refused.value.code == "source_share" and refused.value.status == 429
    assert job_submit(prompt="three", user=admin_user, allow_free_prompt=True).status == Job.Status.QUEUED


def test_a_job_that_cannot_meet_its_deadline_is_refused_before_it_is_stored(api, queue):
    measured(queue, "short", 2_000)  # a batch takes two seconds
    assert api.post({"prompt": "relaxed", "deadline_ms": 10_000}).status_code == 202
    response = api.post({"prompt": "hurried", "deadline_ms": 1_000})
    assert response.status_code == 429
    assert response.json()["error"]["code"] == "deadline_unreachable"
    assert "after its 1000 ms deadline" in response.json()["error"]["message"]
    assert response["Retry-After"] == "2"  # it would finish in 2.06 s: by then the batch ahead has run
    assert Job.objects.count() == 1 and recent_refusals() == {"deadline_unreachable": 1}


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


def test_the_estimate_shares_the_work_among_live_workers_from_when_the_first_is_free(queue):
    settings = get_settings_store().current()
    measured(queue, "short", 1_000)
    for name in ("w1", "w2"):
        queue.redis.zadd(queue.lane_workers_key("short"), {name: alive(queue)})
    queue.redis.zadd(queue.lane_workers_key("short"), {"gone": time.time() - 60})
    queue.redis.zadd(queue.lane_workers_key("long"), {"long-only": alive(queue)})  # does not serve short jobs
    estimate = admission_estimate(queue, settings, lane="short", priority="normal", deadline_ms=10_000)
    assert estimate.workers == 2 and estimate.finish_ms == pytest.approx(1_000 + settings.window_ms)  # its batch
    for job_id in range(1, 32):  # with 31 ahead: four batches, two on each worker
        queue.enqueue(QueuedJob(job_id, "note", 32, prompt_tokens=40), deadline_in_ms=30_000)
    estimate = admission_estimate(queue, settings, lane="short", priority="normal", deadline_ms=60_000)
    assert estimate.finish_ms == pytest.approx(2_000 + settings.window_ms)
    queue.set_busy("long-only", 60_000)  # busy, but not with this lane's work
    queue.set_busy("w1", 3_000)
    estimate = admission_estimate(queue, settings, lane="short", priority="normal", deadline_ms=60_000)
    assert estimate.finish_ms == pytest.approx(2_000 + settings.window_ms)  # w2 is free now
    queue.set_busy("w2", 1_000)  # both busy: the first free one takes the job
    estimate = admission_estimate(queue, settings, lane="short", priority="normal", deadline_ms=60_000)
    # w2 said "free in 1 s" a moment ago: less than that now, by however long this machine took.
    assert estimate.finish_ms == pytest.approx(1_000 + 2_000 + settings.window_ms, abs=200)


def test_long_jobs_ahead_count_one_batch_each_when_the_lane_budget_holds_one(queue):
    settings = get_settings_store().current()  # long_batch_tokens 1024
    measured(queue, "long", 4_000)
    long_job = {"lane": "long", "priority": "normal", "deadline_ms": 60_000, "tokens": 1_500}
    assert admission_estimate(queue, settings, **long_job).finish_ms == pytest.approx(4_000 + settings.window_ms)
    for job_id in (1, 2):
        queue.enqueue(QueuedJob(job_id, "log", 32, prompt_tokens=1_500, lane="long"), deadline_in_ms=30_000)
    estimate = admission_estimate(queue, settings, **long_job)
    assert estimate.ahead == 2 and estimate.finish_ms == pytest.approx(12_000 + settings.window_ms)


def test_a_short_job_is_planned_with_the_batch_time_line_not_the_lane_mix(queue, api):
    settings = get_settings_store().current()
    for _ in range(20):  # one job of 50 tokens takes 2 s, four take 2.6 s
        queue.record_batch_time("short", 2_000, tokens=50, jobs=1)
        queue.record_batch_time("short", 2_600, tokens=200, jobs=4)
    lane_wide = batch_estimate_ms(queue.measurements(), "short")
    alone = admission_estimate(queue, settings, lane="short", priority="normal", deadline_ms=10_000, tokens=50)
    assert lane_wide > 2_700  # the mix of both sizes, with a deviation that is mostly that mix
    # A full batch (eight jobs of 50 tokens, 400 tokens) on the line: 3.4 s, as expiry plans it too.
    assert alone.finish_ms == pytest.approx(3_400 + settings.window_ms, abs=100)
    assert api.post({"prompt": "Describe the dent.", "deadline_ms": 3_600}).status_code == 202


def test_a_long_job_waits_for_the_short_jobs_waiting_on_workers_that_serve_both(queue):
    settings = get_settings_store().current()  # max_batch_size 8
    measured(queue, "long", 4_000)
    measured(queue, "short", 1_000)
    queue.redis.zadd(queue.lane_workers_key("long"), {"both": alive(queue)})
    long_job = {"lane": "long", "priority": "normal", "deadline_ms": 60_000, "tokens": 1_500}
    for job_id in range(1, 10):  # nine short jobs: two batches
        queue.enqueue(QueuedJob(job_id, "note", 32, prompt_tokens=40), deadline_in_ms=10_000)
    alone = admission_estimate(queue, settings, **long_job).finish_ms
    queue.redis.zadd(queue.lane_workers_key("short"), {"both": alive(queue)})
    assert admission_estimate(queue, settings, **long_job).finish_ms == pytest.approx(alone + 2_000)


def test_a_long_batch_in_progress_delays_short_jobs_only_on_its_own_worker(queue):
    settings = get_settings_store().current()
    measured(queue, "short", 1_000)
    queue.redis.zadd(queue.lane_workers_key("short"), {"both": alive(queue), "short-only": alive(queue)})
    queue.redis.zadd(queue.lane_workers_key("long"), {"both": alive(queue)})
    short_job = {"lane": "short", "priority": "normal", "deadline_ms": 10_000}
    assert admission_estimate(queue, settings, **short_job).finish_ms == pytest.approx(1_000 + 60)  # its batch
    queue.set_long_run("both", queue.now() + 2, 4_000)  # 4 s of work left, 2 s to finish it in: all due now
    # Its 4 s land on one of the two workers the short lane shares: with the job's own batch, 5 s of work
    # for two workers, 2.5 s each on average.
    later = admission_estimate(queue, settings, **short_job).finish_ms  # (its deadline comes closer meanwhile)
    assert later == pytest.approx(2_500 + 60, abs=200)


def test_a_short_job_that_would_make_an_accepted_long_job_late_is_refused(queue, api):
    measured(queue, "short", 1_000)
    queue.redis.zadd(queue.lane_workers_key("short"), {"both": alive(queue)})
    queue.redis.zadd(queue.lane_workers_key("long"), {"both": alive(queue)})
    queue.set_long_run("both", queue.now() + 6.5, 4_000)  # 4 s of work left, to finish within 6.5 s
    assert api.post({"prompt": "Describe the dent.", "deadline_ms": 9_000}).status_code == 202  # 1 s, then 4 s
    for job_id in range(100, 115):  # two more batches ranked before the long job's end, as the new one
        queue.enqueue(QueuedJob(job_id, "note", 32, prompt_tokens=40), deadline_in_ms=5_000)
    response = api.post({"prompt": "Describe the scratch.", "deadline_ms": 9_000})
    assert response.status_code == 429 and response["Retry-After"] == "7"  # when the long job is done (6.5 s)
    assert response.json()["error"]["code"] == "long_jobs_due" and "promised to accepted long jobs" in response.text
    assert recent_refusals() == {"long_jobs_due": 1}
    # Its own finish alone was in time: three short batches and the 4 s that cannot wait, 7 s of 9.
    settings = get_settings_store().current()
    estimate = admission_estimate(queue, settings, lane="short", priority="normal", deadline_ms=9_000)
    assert estimate.finish_ms < 9_000 and estimate.long_late_ms > 0


def test_long_jobs_may_book_only_their_share_of_a_worker_that_serves_both_lanes(queue, api):
    get_settings_store().update(long_prompt_tokens=50)  # share: 50 %
    settings = get_settings_store().current()
    measured(queue, "long", 4_000)
    queue.redis.zadd(queue.lane_workers_key("long"), {"both": alive(queue)})
    # About 600 tokens: one job per long batch (1024 tokens).
    log = {"prompt": "Summarise this shift log: " + "motor 3 overheated again, " * 100, "deadline_ms": 10_000}
    assert api.post(log).status_code == 202  # 4 s of 10: within half
    long_job = {"lane": "long", "priority": "normal", "deadline_ms": 10_000, "tokens": 600}
    assert admission_estimate(queue, settings, **long_job).long_share_over_ms == 0  # no short lane on it
    queue.redis.zadd(queue.lane_workers_key("short"), {"both": alive(queue)})
    estimate = admission_estimate(queue, settings, **long_job)
    assert estimate.finish_ms < 10_000 and estimate.long_share_over_ms == pytest.approx(3_000)  # 8 s booked of 5
    # Its own 4 s are more than the 3 s of half its deadline; refused while the lane has work, not when idle.
    alone = admission_estimate(queue, settings, **{**long_job, "deadline_ms": 6_000})
    assert alone.long_share_over_ms == pytest.approx(1_000)
    queue.redis.delete(queue.lane_key("long"))
    alone = admission_estimate(queue, settings, **{**long_job, "deadline_ms": 6_000})
    assert alone.long_share_over_ms == 0 and alone.finish_ms < 6_000
    assert api.post({**log, "prompt": log["prompt"] + " Line 3."}).status_code == 202
    response = api.post({**log, "prompt": log["prompt"] + " Line 4."})
    assert response.status_code == 429 and response.json()["error"]["code"] == "long_lane_share"
    # 3 s over its share: by the time one long batch of 4 s has run, there is room again.
    assert response["Retry-After"] == "4" and recent_refusals() == {"long_lane_share": 1}
    get_settings_store().update(long_share_pct=100)
    assert api.post({**log, "prompt": log["prompt"] + " Line 5."}).status_code == 202
    # Two jobs of 4 s waiting and its own: 12 s of the 15 s that a quarter of 60 s leaves. A long batch in
    # progress on that worker, with 4 s left, is booked long work too.
    get_settings_store().update(long_share_pct=25)
    quarter = get_settings_store().current()
    assert admission_estimate(queue, quarter, **{**long_job, "deadline_ms": 60_000}).long_share_over_ms == 0
    queue.set_long_run("both", queue.now() + 60, 4_000)
    estimate = admission_estimate(queue, quarter, **{**long_job, "deadline_ms": 60_000})
    assert estimate.long_share_over_ms == pytest.approx(1_000) and estimate.retry_after_s == 4  # one batch
    # A worker kept for the long lane gives it all its time: 15 s and 60 s.
    queue.redis.zadd(queue.lane_workers_key("long"), {"long-only": alive(queue)})
    assert admission_estimate(queue, quarter, **{**long_job, "deadline_ms": 60_000}).long_share_over_ms == 0


def test_manager_form_takes_priority_and_deadline(manager_client):
    make_template(slug="stop", title="Line stop", body="Line {line} stopped.")
    response = manager_client.post(
        "/jobs/new/", {"template": "stop", "var_line": "B", "priority": "high", "deadline_s": "4"}
    )
    job = Job.objects.get()
    assert response.status_code == 302 and job.priority == "high"
    assert round((job.deadline_at - job.created_at).total_seconds()) == 4
    response = manager_client.post("/jobs/new/", {"template": "stop", "var_line": "B", "priority": "urgent"})
    assert response.status_code == 400 and Job.objects.count() == 1


def after_an_overload(queue):
    """The estimate an overload left behind (measured on a node that refused every default job after it)."""
    queue.redis.hset(
        queue.stats,
        mapping={"batch_ms:short": 6_128, "batch_dev_ms:short": 7_074, "measured_at:short": queue.now()},
    )


def test_an_idle_node_admits_a_default_job_as_a_probe_whatever_an_overload_left_behind(api, queue):
    after_an_overload(queue)
    queue.redis.zadd(queue.lane_workers_key("short"), {"w1": alive(queue)})
    queue.set_busy("w1", 3_000)  # running a batch: the estimate applies, and it misses the deadline
    refused = api.post({"prompt": "Describe the dent."})
    assert refused.status_code == 429 and refused.json()["error"]["code"] == "deadline_unreachable"
    queue.clear_busy("w1")  # idle, nothing waiting: the job would start after one window
    assert api.post({"prompt": "Describe the dent."}).status_code == 202
    # Now a job waits: the next one is planned behind it, with the margin, as usual.
    assert api.post({"prompt": "Describe the scratch."}).status_code == 429


def test_a_probe_still_needs_one_batch_as_things_stand_within_its_deadline(api, queue):
    after_an_overload(queue)
    queue.redis.zadd(queue.lane_workers_key("short"), {"w1": alive(queue)})
    estimate = admission_estimate(
        queue, get_settings_store().current(), lane="short", priority="normal", deadline_ms=10_000
    )
    assert estimate.probe_finish_ms == pytest.approx(6_128 + 60 + 613, abs=1)  # a batch, a window, a margin
    response = api.post({"prompt": "Describe the dent.", "deadline_ms": 5_000})
    assert response.status_code == 429 and response.json()["error"]["code"] == "deadline_unreachable"


def test_a_worker_serving_the_other_lane_too_is_idle_only_when_both_lanes_are_empty(api, queue):
    after_an_overload(queue)
    queue.redis.zadd(queue.lane_workers_key("short"), {"both": alive(queue)})
    queue.redis.zadd(queue.lane_workers_key("long"), {"both": alive(queue)})
    queue.enqueue(QueuedJob(99, "log", 32, prompt_tokens=1_500, lane="long"), deadline_in_ms=30_000)
    assert api.post({"prompt": "Describe the dent."}).status_code == 429  # it will run the long job first


def test_without_any_measurement_admission_plans_with_the_model_prior(api, queue):
    # Nothing measured, no worker yet: the tiny test model's prior plans a full batch at about a tenth of a
    # second, so of a burst with 400 ms deadlines only the first batches are admitted.
    answers = [api.post({"prompt": f"Describe defect {i}.", "deadline_ms": 400}).status_code for i in range(40)]
    assert answers[0] == 202 and 429 in answers
    assert queue.depth() == answers.count(202) < 40


def test_a_burst_that_finds_an_idle_lane_sends_one_probe_and_plans_the_rest_behind_it(queue, source_token):
    after_an_overload(queue)
    queue.redis.zadd(queue.lane_workers_key("short"), {"w1": alive(queue)})
    source = Source.objects.get()

    def submit(i: int) -> int:
        try:
            job_submit(prompt=f"Describe defect {i}.", source=source, allow_free_prompt=True)
            return 202
        except JobRejected as refused:
            return refused.status
        finally:
            connection.close()  # each thread's own connection

    with ThreadPoolExecutor(max_workers=12) as pool:
        answers = list(pool.map(submit, range(12)))
    assert answers.count(202) == 1 and answers.count(429) == 11


def test_a_burst_of_concurrent_requests_is_admitted_only_as_far_as_it_can_finish(queue, source_token):
    # Each batch of eight takes 2 s: one batch fits a 3 s deadline, two do not. Sixteen requests at once
    # each read the queue before the others have queued their jobs; the places they hold make them count
    # each other.
    measured(queue, "short", 2_000)
    source = Source.objects.get()
    start = threading.Barrier(16)

    def submit(i: int) -> int:
        try:
            start.wait()
            job_submit(prompt=f"Describe defect {i}.", deadline_ms=3_000, source=source, allow_free_prompt=True)
            return 202
        except JobRejected as refused:
            return refused.status
        finally:
            connection.close()

    get_settings_store().update(source_share_pct=100)
    with ThreadPoolExecutor(max_workers=16) as pool:
        answers = list(pool.map(submit, range(16)))
    assert answers.count(202) == 8 and answers.count(429) == 8
    assert queue.depth() == 8 and queue.redis.zcard(queue.held_key("short")) == 0  # every place given up
