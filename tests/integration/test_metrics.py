"""Multiprocess metrics for real: what a worker process observes shows in the web's /metrics."""

import os
import shutil
import subprocess
import urllib.request
from pathlib import Path

import pytest

from edgeportal.jobs.models import Job
from tests.integration.workers import wait_until
from tests.monitoring.scrape import grew, scrape

pytestmark = pytest.mark.integration


def counted_all(client, before, jobs: int):
    """A scrape once every count the test reads has grown by `jobs` (None before)."""
    now = scrape(client)
    series = (("edgeportal_requests_total", {"status": "done"}), ("edgeportal_batch_size_sum", {}),
              ("edgeportal_request_inference_seconds_count", {"lane": "short"}))  # fmt: skip
    return now if all(grew(before, now, name, **labels) >= jobs for name, labels in series) else None


def test_a_worker_processs_batches_appear_in_the_webs_metrics(api, client, start_worker):
    before = scrape(client)
    worker = start_worker(EDGE_WINDOW_MS="400")
    assert scrape(client).get("edgeportal_workers_alive") == 1
    # Deadlines a loaded machine meets (admission plans with what the worker's warm-up measured).
    ids = [api.post({"prompt": f"Describe defect number {i}.", "deadline_ms": 120_000}).json()["id"] for i in range(3)]
    wait_until(lambda: Job.objects.filter(pk__in=ids, status=Job.Status.DONE).count() == 3, what="three jobs")

    # Batches are recorded only in the worker process: these numbers crossed the process boundary. The worker
    # counts a job once its row is committed (on_commit), a moment after the database shows it done.
    after = wait_until(lambda: counted_all(client, before, 3), what="the worker's counts")
    assert grew(before, after, "edgeportal_requests_total", status="done") == 3
    assert grew(before, after, "edgeportal_request_inference_seconds_count", lane="short") == 3
    assert grew(before, after, "edgeportal_batch_size_count") >= 1
    assert grew(before, after, "edgeportal_batch_size_sum") == 3
    assert list(Path(os.environ["PROMETHEUS_MULTIPROC_DIR"]).glob(f"histogram_{worker.process.pid}.db"))

    worker.stop()  # its counters outlive it: Prometheus must not see them drop when a worker restarts
    assert scrape(client).get("edgeportal_requests_total", status="done") == after.get(
        "edgeportal_requests_total", status="done"
    )


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool is not installed (scripts/ensure-promtool.sh)")
def test_the_production_servers_live_exposition_passes_promtool_after_real_work(api, start_worker, start_web):
    """The exposition as Prometheus scrapes it: from gunicorn (several processes' files merged), after a worker's
    batches and a refusal, so histograms, counters and gauges of every kind carry samples."""
    start_worker()
    web = start_web()
    done = api.post({"prompt": "Describe the dent.", "deadline_ms": 120_000}).json()["id"]
    assert api.post({"prompt": "x" * 100_000}).status_code == 400  # a refusal counted by rule
    wait_until(lambda: Job.objects.filter(pk=done, status=Job.Status.DONE).exists(), what="the job")
    with urllib.request.urlopen(f"{web.url}/metrics", timeout=10) as response:
        exposition = response.read().decode()
    assert "edgeportal_requests_total" in exposition and "edgeportal_rejections_total" in exposition
    checked = subprocess.run(["promtool", "check", "metrics"], input=exposition, capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr
