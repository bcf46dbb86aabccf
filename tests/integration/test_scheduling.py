"""The scheduler with real parts: the API, Redis, and Celery worker processes running the tiny model."""

import time
from pathlib import Path

import pytest

from edgeportal.core.queueing import get_queue, get_settings_store
from edgeportal.jobs.models import Job
from edgeportal.latency.models import BatchRecord, JobLatency
from edgeportal.tuning.services import settings_save
from inference.admission import admission_estimate
from tests.conftest import make_template, recent_refusals
from tests.integration.test_pipeline import finished, slow_jobs
from tests.integration.workers import wait_until

pytestmark = pytest.mark.integration

ONE_AT_A_TIME = {"EDGE_MAX_BATCH_SIZE": "1", "EDGE_WINDOW_MS": "0"}


def submit(api, prompt, **fields) -> int:
    response = api.post({"prompt": prompt, **fields})
    assert response.status_code == 202, response.content
    return response.json()["id"]


def run_order(ids):
    return sorted(ids, key=lambda job_id: Job.objects.get(pk=job_id).inference_started_at)


def test_jobs_run_earliest_deadline_first_not_in_arrival_order(api, start_worker):
    # Queued before any worker runs, so the order is the scheduler's choice alone.
    ids = {deadline: submit(api, f"Check {deadline}", deadline_ms=deadline) for deadline in (90_000, 30_000, 60_000)}
    start_worker(**ONE_AT_A_TIME)
    wait_until(finished(*ids.values()), what="three jobs")
    assert run_order(ids.values()) == [ids[30_000], ids[60_000], ids[90_000]]


def test_higher_priorities_go_first_and_a_low_job_that_waited_long_enough_goes_before_them(api, start_worker):
    get_settings_store().update(
        priority_weight_high_ms=2_000, priority_weight_normal_ms=1_000, priority_weight_low_ms=0
    )
    aged = submit(api, "Old report", priority="low", deadline_ms=60_000)
    time.sleep(2.5)  # longer than the high priority's head start over low: it has aged past new high jobs
    low = submit(api, "New report", priority="low", deadline_ms=60_000)
    normal = submit(api, "Shift note", priority="normal", deadline_ms=60_000)
    high = submit(api, "Line 2 stopped", priority="high", deadline_ms=60_000)
    start_worker(**ONE_AT_A_TIME)
    wait_until(finished(aged, low, normal, high), what="four jobs")
    assert run_order([aged, low, normal, high]) == [aged, high, normal, low]


def test_a_job_past_its_deadline_expires_without_running(api, start_worker):
    late = submit(api, "Too late", deadline_ms=400)  # admitted (the tiny model's prior), then overdue
    on_time = submit(api, "On time", deadline_ms=120_000)
    start_worker()
    wait_until(finished(late, on_time), what="both jobs")
    job = Job.objects.get(pk=late)
    assert job.status == Job.Status.EXPIRED and "deadline passed" in job.error
    assert job.batch is None and job.inference_started_at is None
    # deadline - created: the row is stamped after admission, a moment after the deadline was set.
    assert job.latency.status == "expired" and job.latency.deadline_ms == pytest.approx(400, abs=100)
    assert api.get(late).json()["error"].startswith("expired:")
    assert Job.objects.get(pk=on_time).status == Job.Status.DONE


def test_a_job_learns_it_expired_while_a_long_batch_is_still_running(api, start_worker):
    start_worker(EDGE_WINDOW_MS="300")
    # Long outputs kept in the short lane (by default they go to the long lane, whose batches stand aside).
    get_settings_store().update(long_output_tokens=100_000)
    slow = slow_jobs(api, 3)  # one batch of three long generations: seconds
    wait_until(lambda: Job.objects.get(pk=slow[0]).status == Job.Status.RUNNING, what="the long batch to start")
    # Admission plans for the batch's outputs; as if it had planned too little (a busier machine than measured),
    # the worker's batch says it ends now, while it runs on for seconds.
    queue = get_queue()
    [worker] = queue.redis.hkeys(queue.busy_key)
    queue.set_busy(worker, 0)
    settings = get_settings_store().current()
    planned = admission_estimate(queue, settings, lane="short", priority="normal", deadline_ms=60_000)
    hurried = submit(api, "Hurried", deadline_ms=int(planned.finish_ms) + 500)
    wait_until(finished(hurried), timeout=30, what="the expiry")
    assert Job.objects.get(pk=hurried).status == Job.Status.EXPIRED
    assert Job.objects.get(pk=slow[0]).status == Job.Status.RUNNING  # the expiry did not wait for the batch


def test_long_prompts_run_in_their_own_batches_after_the_short_ones(api, start_worker):
    get_settings_store().update(long_prompt_tokens=40)
    log = "belt 3 slipped at station 7, " * 12
    long_ids = [submit(api, f"Summarise log {i}: {log}", deadline_ms=120_000) for i in range(2)]
    short_ids = [submit(api, f"Short note {i}", deadline_ms=120_000) for i in range(4)]
    assert {Job.objects.get(pk=i).lane for i in long_ids} == {"long"}
    start_worker(EDGE_WINDOW_MS="200")
    wait_until(finished(*long_ids, *short_ids), what="all jobs")
    for batch in BatchRecord.objects.all():
        assert {job.lane for job in batch.jobs.all()} == {batch.lane}  # never mixed
    assert {Job.objects.get(pk=i).batch.lane for i in long_ids} == {"long"}
    first_long = min(Job.objects.get(pk=i).inference_started_at for i in long_ids)
    assert max(Job.objects.get(pk=i).inference_started_at for i in short_ids) < first_long


def test_once_batches_are_measured_a_job_that_cannot_finish_in_time_is_refused(api, start_worker):
    start_worker(EDGE_WINDOW_MS="0")
    first = submit(api, "Measure me")
    wait_until(finished(first), what="a first batch")
    response = api.post({"prompt": "Impossible", "deadline_ms": 1})
    settings = get_settings_store().current()
    planned = admission_estimate(get_queue(), settings, lane="short", priority="normal", deadline_ms=1)
    # When it could finish, less its deadline, rounded up: what the estimate says, not just the floor of 1 s.
    assert response.status_code == 429 and int(response["Retry-After"]) == planned.retry_after_s
    assert response.json()["error"]["code"] == "deadline_unreachable"
    assert recent_refusals() == {"deadline_unreachable": 1}
    assert Job.objects.count() == 1


def test_a_saved_setting_reaches_the_running_worker_within_a_second(api, start_worker, admin_user):
    worker = start_worker(EDGE_WINDOW_MS="400")
    key = get_queue().worker_key(worker.name)
    wait_until(lambda: get_queue().redis.hget(key, "settings_applied_version") == "0", what="the start")
    saving = time.time()
    settings_save(user=admin_user, values={"window_ms": 25, "max_batch_tokens": 2000})
    saved = time.time()
    # The worker says when it first applied version 1 (this test's own polling may be late on a busy
    # machine); both stamps come from this host's clock.
    wait_until(lambda: get_queue().redis.hget(key, "settings_applied_version") == "1", timeout=10, what="the pick-up")
    applied_at = float(get_queue().redis.hget(key, "settings_applied_at"))
    assert saving <= applied_at < saved + 1.0
    job = submit(api, "After the change")
    wait_until(finished(job), what="the job")
    batch = Job.objects.get(pk=job).batch
    assert batch.window_ms == 25 and batch.settings["max_batch_tokens"] == 2000


def test_two_workers_share_the_queue_and_no_job_runs_twice(api, start_worker):
    start_worker("w1", EDGE_MAX_BATCH_SIZE="2", EDGE_WINDOW_MS="0")
    start_worker("w2", EDGE_MAX_BATCH_SIZE="2", EDGE_WINDOW_MS="0")
    ids = [submit(api, f"Inspection {i}", deadline_ms=120_000) for i in range(16)]
    wait_until(finished(*ids), timeout=120, what="sixteen jobs")
    assert set(Job.objects.filter(pk__in=ids).values_list("status", flat=True)) == {Job.Status.DONE}
    assert JobLatency.objects.filter(job__in=ids).count() == 16
    assert sum(BatchRecord.objects.values_list("size", flat=True)) == 16  # no job in two batches
    assert set(BatchRecord.objects.values_list("worker", flat=True)) == {"w1@test", "w2@test"}
    # A batch's jobs leave Redis just after their results are committed (a worker runs at a lower CPU priority).
    wait_until(lambda: get_queue().live_job_ids() == set(), timeout=10, what="the last leases to be released")


def test_a_short_job_sent_while_a_long_prompt_runs_does_not_wait_for_it(api, start_worker):
    get_settings_store().update(long_prompt_tokens=40, long_chunk_tokens=32)
    make_template(slug="shift-log", title="Shift log", body="Summarise this shift log: {log}", max_new_tokens=1000)

    def send_log(line: int) -> int:  # a different log each time: the prompt cache would answer a repeat
        log = f"belt {line} slipped at station 7, " * 8
        return api.post({"template": "shift-log", "variables": {"log": log}, "deadline_ms": 120_000}).json()["id"]

    start_worker(EDGE_WINDOW_MS="0")
    first = send_log(1)  # measures the long lane: a long batch shares only time it can plan
    wait_until(finished(first), what="a first long job")
    long = send_log(2)
    wait_until(lambda: Job.objects.get(pk=long).status == Job.Status.RUNNING, what="the long batch to start")
    short = submit(api, "Short note on belt 3.", deadline_ms=120_000)
    wait_until(finished(long, short), timeout=120, what="both jobs")
    long_job, short_job = Job.objects.get(pk=long), Job.objects.get(pk=short)
    assert long_job.lane == "long" and short_job.lane == "short" and not long_job.cache_hit
    assert long_job.inference_started_at < short_job.finished_at < long_job.inference_ended_at
    assert long_job.batch.paused_ms > 0


def nice_values(pid: int) -> list[int]:
    """The nice value of each thread of a process (field 19 of /proc/<pid>/task/<tid>/stat)."""
    values = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        values.append(int(fields[16]))
    return values


def test_the_worker_runs_batches_at_a_lower_cpu_priority_than_the_web_side(start_worker):
    worker = start_worker(EDGE_WORKER_NICE="7")
    values = nice_values(worker.process.pid)
    assert values.count(0) >= 1  # Celery's own threads are left alone
    assert values.count(7) >= 2  # the batch thread and the threads it started: the timer, torch's
