"""Candidates and the CPU reranker with real parts: a template of three candidates sent from the API, run by
a real worker process (the tiny model beside the real embedding model), its choice stored and shown."""

import pytest

from edgeportal.jobs.models import Job
from tests.conftest import make_template
from tests.integration.test_pipeline import finished
from tests.integration.workers import wait_until

pytestmark = pytest.mark.integration


def test_a_worker_generates_the_candidates_in_one_batch_and_keeps_the_best(api, start_worker, manager_client):
    make_template(slug="best", title="Best of three", body="Camera {camera} found {defect}. Describe it.",
                  candidates=3, max_new_tokens=8, deadline_ms=120_000)  # fmt: skip
    start_worker(EDGE_WINDOW_MS="1500")  # it loads the reranker's model beside its own: a template asks for them
    sent = [api.post({"template": "best", "variables": {"camera": f"C{i}", "defect": "a dent"}}) for i in range(2)]
    ids = [response.json()["id"] for response in sent]
    wait_until(finished(*ids), what="the reranked jobs")
    jobs = list(Job.objects.filter(pk__in=ids))
    assert all(job.status == Job.Status.DONE for job in jobs)
    assert jobs[0].batch_id == jobs[1].batch_id and jobs[0].batch.size == 2  # two jobs, six rows, one batch
    for job in jobs:
        assert (
            len(job.choice["candidates"]) == 3 and job.output == job.choice["candidates"][job.choice["chosen"]]["text"]
        )
        assert job.latency.rerank_ms is not None and "error" not in job.choice
    page = manager_client.get(f"/jobs/{ids[0]}/").content.decode()
    assert 'data-testid="job-choice"' in page
