"""Beat on its own, with no worker: the periodic sweep still runs (real beat process, Redis and database)."""

import pytest

from edgeportal.core.queueing import get_queue
from edgeportal.jobs.models import Job
from tests.integration.workers import wait_until

pytestmark = pytest.mark.integration


def test_beat_alone_expires_the_overdue_jobs_no_worker_will_run(api, start_beat):
    overdue = api.post({"prompt": "Nobody runs me", "deadline_ms": 400}).json()["id"]
    patient = api.post({"prompt": "I can wait", "deadline_ms": 300_000}).json()["id"]
    beat = start_beat(EDGE_SWEEP_EVERY_S="1", EDGE_SWEEP_GRACE_S="0")
    try:
        wait_until(lambda: Job.objects.get(pk=overdue).status == Job.Status.EXPIRED, timeout=60, what="the sweep")
    except TimeoutError:
        raise AssertionError(beat.log()) from None
    assert "deadline passed" in Job.objects.get(pk=overdue).error
    assert get_queue().live_job_ids() == {patient}  # still waiting for a worker, in Redis
    assert Job.objects.get(pk=patient).status == Job.Status.QUEUED


def test_beat_beside_a_worker_with_its_model_loaded_runs_its_tasks(start_worker, start_beat, admin_user):
    # make run's processes on SQLite: the worker has the database open while beat runs its tasks.
    from edgeportal.core.queueing import get_settings_store
    from edgeportal.tuning.services import settings_save

    start_worker("w1")
    settings_save(user=admin_user, values={"window_ms": 45})
    get_settings_store().redis.delete(get_settings_store().key)  # Redis lost them (a restart without persistence)
    beat = start_beat(EDGE_SWEEP_EVERY_S="1")
    try:
        # It reads the database: forked from the worker, beat failed here at every try ("disk I/O error").
        wait_until(lambda: get_settings_store().current().window_ms == 45, timeout=60, what="the republish")
    except TimeoutError:
        raise AssertionError(beat.log()) from None
    assert "failed" not in beat.log()
