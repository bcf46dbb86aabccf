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
