"""Multiprocess metrics for real: what a worker process observes shows in the web's /metrics."""

import os
from pathlib import Path

import pytest

from edgeportal.jobs.models import Job
from tests.integration.workers import wait_until
from tests.monitoring.scrape import grew, scrape

pytestmark = pytest.mark.integration


def test_a_worker_processs_batches_appear_in_the_webs_metrics(api, client, start_worker):
    before = scrape(client)
    worker = start_worker(EDGE_WINDOW_MS="400")
    assert scrape(client).get("edgeportal_workers_alive") == 1
    # Deadlines a loaded machine meets (admission plans with what the worker's warm-up measured).
    ids = [api.post({"prompt": f"Describe defect number {i}.", "deadline_ms": 120_000}).json()["id"] for i in range(3)]
    wait_until(lambda: Job.objects.filter(pk__in=ids, status=Job.Status.DONE).count() == 3, what="three jobs")

    # Batches are recorded only in the worker process: these numbers crossed the process boundary.
    after = scrape(client)
    assert grew(before, after, "edgeportal_requests_total", status="done") == 3
    assert grew(before, after, "edgeportal_request_inference_seconds_count", lane="short") == 3
    assert grew(before, after, "edgeportal_batch_size_count") >= 1
    assert grew(before, after, "edgeportal_batch_size_sum") == 3
    assert list(Path(os.environ["PROMETHEUS_MULTIPROC_DIR"]).glob(f"histogram_{worker.process.pid}.db"))

    worker.stop()  # its counters outlive it: Prometheus must not see them drop when a worker restarts
    assert scrape(client).get("edgeportal_requests_total", status="done") == after.get(
        "edgeportal_requests_total", status="done"
    )
