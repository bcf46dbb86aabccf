"""The periodic sweep with the real Redis and no worker running: lost jobs go back, overdue ones expire."""

import time

import pytest

from edgeportal.jobs.entry import job_submit
from edgeportal.jobs.models import Job
from edgeportal.jobs.services import jobs_requeue_lost
from inference.scheduler import collect_window
from inference.settings import SchedulerSettings

pytestmark = pytest.mark.django_db(transaction=True)


def submit(prompt, deadline_ms):
    return job_submit(prompt=prompt, deadline_ms=deadline_ms, allow_free_prompt=True)


def test_with_no_worker_the_sweep_expires_the_overdue_jobs_redis_still_holds(queue):
    overdue = submit("Nobody runs me", 400)  # admitted: the tiny model's prior plans ~0.15 s
    patient = submit("I can wait", 60_000)
    time.sleep(0.5)
    assert jobs_requeue_lost(grace_s=0) == 0
    overdue.refresh_from_db()
    assert overdue.status == Job.Status.EXPIRED and "deadline passed" in overdue.error
    assert overdue.latency.status == "expired"
    assert queue.live_job_ids() == {patient.pk}  # taken out of Redis: no worker starting now can run it
    assert Job.objects.get(pk=patient.pk).status == Job.Status.QUEUED


def test_the_sweep_leaves_a_lane_a_live_worker_serves_to_that_workers_expiry_timer(make_worker, queue):
    make_worker(lanes=("short",)).heartbeat()
    overdue = submit("The worker sees me", 400)
    time.sleep(0.5)
    jobs_requeue_lost(grace_s=0)
    assert Job.objects.get(pk=overdue.pk).status == Job.Status.QUEUED and queue.live_job_ids() == {overdue.pk}


def test_with_no_worker_left_the_sweep_expires_the_overdue_jobs_a_dead_worker_had_leased(queue):
    leased = submit("Taken, then the worker died", 300)
    [taken] = collect_window(queue, "dead@host", lambda: SchedulerSettings(window_ms=0), lease_ms=1).jobs
    assert taken.job_id == leased.pk
    time.sleep(0.4)
    jobs_requeue_lost(grace_s=0)
    assert Job.objects.get(pk=leased.pk).status == Job.Status.EXPIRED
    assert queue.live_job_ids() == set()
