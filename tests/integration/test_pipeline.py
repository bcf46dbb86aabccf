"""The whole path with real parts: API or form -> Redis -> a Celery worker process -> database."""

import re
import time

import pytest

from edgeportal.core.queueing import get_queue
from edgeportal.jobs.models import Job
from edgeportal.latency.models import JobLatency
from inference.settings import SchedulerSettings
from inference.store.queue import SettingsStore
from tests.conftest import make_template
from tests.integration.workers import wait_until

pytestmark = pytest.mark.integration


def finished(*job_ids):
    return lambda: Job.objects.filter(pk__in=job_ids, status__in=Job.FINISHED).count() == len(job_ids)


def test_concurrent_jobs_share_a_batch_and_a_lone_job_runs_alone_after_the_window(api, start_worker):
    worker = start_worker(EDGE_WINDOW_MS="400")
    # Deadlines a loaded machine meets (admission plans with what the worker's warm-up measured).
    ids = [api.post({"prompt": f"Describe defect number {i}.", "deadline_ms": 120_000}).json()["id"] for i in range(4)]
    wait_until(finished(*ids), what="the burst to finish")
    bodies = [api.get(job_id).json() for job_id in ids]
    assert {b["status"] for b in bodies} == {"done"}
    assert len({b["batch_id"] for b in bodies}) == 1
    assert {b["batch_size"] for b in bodies} == {4}
    assert all(b["latency"]["total_ms"] >= b["latency"]["inference_ms"] > 0 for b in bodies)

    lone = api.post({"prompt": "A lone request."}).json()["id"]
    wait_until(finished(lone), what="the lone job")
    body = api.get(lone).json()
    assert body["status"] == "done" and body["batch_size"] == 1 and body["batch_id"] not in {bodies[0]["batch_id"]}
    job = Job.objects.get(pk=lone)
    # The window is anchored at the job's arrival: inference starts no earlier than 400 ms after it.
    assert (job.inference_started_at - job.created_at).total_seconds() >= 0.4
    assert body["latency"]["window_wait_ms"] > 300
    assert worker.log().count("loaded and warmed up") == 1  # resident: loaded once for all batches


def test_a_manager_form_job_finishes_with_its_output(manager_client, start_worker):
    make_template(slug="notice", title="Notice", body="Write a notice: line {line} restarts.")
    start_worker()
    response = manager_client.post("/jobs/new/", {"template": "notice", "var_line": "A"})
    job = Job.objects.get()
    wait_until(finished(job.pk), what="the form job")
    job.refresh_from_db()
    assert job.status == Job.Status.DONE and job.output_tokens > 0
    assert response["Location"] == f"/jobs/{job.pk}/"
    assert "done" in manager_client.get(f"/jobs/{job.pk}/", headers={"HX-Request": "true"}).content.decode()


def test_a_settings_change_in_redis_applies_to_the_running_worker(api, start_worker, settings):
    start_worker(EDGE_WINDOW_MS="400", EDGE_MAX_BATCH_SIZE="8")
    SettingsStore(get_queue(), SchedulerSettings()).update(max_batch_size=2)
    ids = [api.post({"prompt": f"Job {i}", "deadline_ms": 120_000}).json()["id"] for i in range(4)]
    wait_until(finished(*ids), what="four jobs")
    assert set(JobLatency.objects.values_list("batch_size", flat=True)) == {2}


def slow_jobs(api, count):
    """Jobs that keep the tiny model busy for seconds, so a kill lands mid-batch."""
    make_template(slug="long", title="Long", body="Write a long report on {topic}.", max_new_tokens=1000)
    # Time enough to survive a kill and a restart; the longest there is, because admission plans all 1000
    # tokens at the steps the worker measured, over a minute on a busy 2-core machine.
    body = {"template": "long", "deadline_ms": 300_000}
    answers = [api.post({**body, "variables": {"topic": f"line {i}"}}).json() for i in range(count)]
    assert all("id" in answer for answer in answers), answers
    return [answer["id"] for answer in answers]


LEASE = {"EDGE_RECLAIM_IDLE_MS": "600000"}  # ten minutes: recovery within the tests' time is never by lease


def runs_of(job_id, *workers):
    """The batches that ran this job to the end, from the workers' logs (a kill mid-batch logs none)."""
    pattern = re.compile(r"ran a \w+ batch of \d+ job\(s\) \[([\d ]+)\]")
    logs = {worker.log_path.read_text(errors="replace") for worker in workers}  # a restart appends to its log
    return sum(str(job_id) in found.split() for log in logs for found in pattern.findall(log))


def test_jobs_of_a_worker_killed_mid_batch_finish_after_it_restarts(api, start_worker):
    worker = start_worker("w1", EDGE_WINDOW_MS="300", **LEASE)
    ids = slow_jobs(api, 3)
    wait_until(lambda: Job.objects.filter(pk__in=ids, status=Job.Status.RUNNING).count() == 3, what="running")
    worker.kill()
    assert Job.objects.filter(pk__in=ids, status=Job.Status.RUNNING).count() == 3  # killed mid-batch

    restarted = start_worker("w1", **LEASE)  # same name: takes back its own leases at once
    wait_until(finished(*ids), timeout=120, what="the replay")
    assert set(Job.objects.filter(pk__in=ids).values_list("status", flat=True)) == {Job.Status.DONE}
    assert [runs_of(job_id, worker, restarted) for job_id in ids] == [1, 1, 1]  # the model finished each once


def test_another_worker_takes_over_the_jobs_of_a_worker_whose_heartbeat_stopped(api, start_worker):
    worker = start_worker("w1", EDGE_WINDOW_MS="300", **LEASE)
    ids = slow_jobs(api, 2)
    wait_until(lambda: Job.objects.filter(pk__in=ids, status=Job.Status.RUNNING).count() == 2, what="running")
    # Killed before the other starts: a worker's start takes seconds, in which w1 could finish the batch.
    worker.kill()
    killed_at = time.time()
    assert Job.objects.filter(pk__in=ids, status=Job.Status.RUNNING).count() == 2  # killed mid-batch
    other = start_worker("w2", **LEASE)

    wait_until(finished(*ids), timeout=120, what="the takeover")
    jobs = Job.objects.filter(pk__in=ids)
    assert set(jobs.values_list("worker", flat=True)) == {"w2@test"}
    assert set(jobs.values_list("status", flat=True)) == {Job.Status.DONE}
    # Picked up again once its heartbeat was silent for six seconds, not after the ten-minute lease.
    assert max(job.picked_at.timestamp() for job in jobs) - killed_at < 60
    assert [runs_of(job_id, worker, other) for job_id in ids] == [1, 1]


def test_a_worker_with_a_bad_model_path_stops_with_a_clear_message(start_worker):
    with pytest.raises(RuntimeError, match="exited early") as failure:
        start_worker("w1", EDGE_MODEL="/nowhere/model")
    assert "worker configuration error: EDGE_MODEL='/nowhere/model' is neither a .gguf file nor a folder" in str(
        failure.value
    )


def test_a_worker_asked_for_a_gpu_the_machine_lacks_stops_with_a_clear_message(start_worker):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(RuntimeError, match="exited early") as failure:
        start_worker("w1", EDGE_DEVICE="cuda:0")
    assert "worker configuration error: EDGE_DEVICE=cuda:0 names a GPU this machine does not have" in str(failure.value)
