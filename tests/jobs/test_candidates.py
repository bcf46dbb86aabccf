"""A template of several candidates, end to end in this process: the entry's decoding, one batch on the real
(tiny) model with the real reranker, the stored choice and its latency, and the job page's "why this answer"."""

import pytest

from edgeportal.jobs.entry import PAGE_DECODING, job_submit
from edgeportal.jobs.models import Job
from edgeportal.jobs.selectors import job_as_json
from edgeportal.outputs.reranking import reranker_embedder, reranker_pick
from inference.candidates import WithCandidates
from inference.decoding import Decoding
from tests.conftest import make_template

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def reranking_worker(make_worker, tiny_model):
    return make_worker(model=WithCandidates(tiny_model, reranker_pick(reranker_embedder)))


def test_a_job_of_three_candidates_stores_the_chosen_one_and_why(reranking_worker, manager_client):
    make_template(slug="t", title="T", body="Camera {camera} found {defect}.", candidates=3, max_new_tokens=8)
    job = job_submit(template_slug="t", variables={"camera": "C3", "defect": "<b>a dent</b>"}, decoding=PAGE_DECODING,
                     allow_free_prompt=False)  # fmt: skip
    decoding = Decoding.from_dict(job.decoding)
    assert (decoding.candidates, decoding.language, decoding.stream) == (3, "en", False)  # it does not stream
    reranking_worker.batch_step()
    job.refresh_from_db()
    assert job.status == Job.Status.DONE
    chosen, candidates = job.choice["chosen"], job.choice["candidates"]
    assert len(candidates) == 3 and job.output == candidates[chosen]["text"]
    assert max(c["total"] for c in candidates) == candidates[chosen]["total"]
    assert {"echo_share", "missing_items", "language_ok", "loop_free", "similarity"} <= set(candidates[0])
    assert job.latency.rerank_ms == job.choice["rerank_ms"] and job.latency.rerank_ms > 0
    assert job.batch.padded_tokens == 3 * job.prompt_tokens  # its three rows, one job in the batch
    body = job_as_json(job)  # a machine reads why too (GET /api/jobs/<id>)
    assert body["choice"]["chosen"] == chosen and body["latency"]["rerank_ms"] == job.latency.rerank_ms
    page = manager_client.get(f"/jobs/{job.pk}/").content.decode()
    assert 'data-testid="job-choice"' in page and 'data-testid="choice-chosen"' in page
    assert "Reranking (inside inference)" in page


def test_a_template_of_one_candidate_is_not_reranked(reranking_worker, defect_template):
    job = job_submit(template_slug="defect", variables={"camera": "C3", "defect": "a dent"}, allow_free_prompt=False)
    assert Decoding.from_dict(job.decoding).candidates == 1
    reranking_worker.batch_step()
    job.refresh_from_db()
    assert job.status == Job.Status.DONE and job.choice == {} and job.latency.rerank_ms is None


def test_the_same_request_gets_the_same_reranked_answer_from_the_cache(reranking_worker):
    make_template(slug="t", title="T", body="Describe {defect}.", candidates=2, max_new_tokens=6)
    first = job_submit(template_slug="t", variables={"defect": "a dent"}, allow_free_prompt=False)
    reranking_worker.batch_step()
    first.refresh_from_db()
    again = job_submit(template_slug="t", variables={"defect": "a dent"}, allow_free_prompt=False)
    assert again.cache_hit and again.output == first.output


def test_why_this_answer_escapes_the_model_output_and_says_when_the_reranker_failed(manager_client, defect_template):
    job = job_submit(template_slug="defect", variables={"camera": "C3", "defect": "a dent"}, allow_free_prompt=False)
    scored = {"text": "<script>alert(1)</script>", "new_tokens": 5, "total": 1.0, "echo_share": 1.0,
              "missing_items": ["<b>P3</b>"], "language_ok": True, "detected_language": "en", "loop_free": True,
              "length_problem": None, "similarity": 0.5}  # fmt: skip
    Job.objects.filter(pk=job.pk).update(status=Job.Status.DONE, output="<script>alert(1)</script>",
                                         choice={"chosen": 0, "candidates": [scored], "rerank_ms": 2.0})  # fmt: skip
    page = manager_client.get(f"/jobs/{job.pk}/").content.decode()
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<b>P3</b>" not in page and "&lt;b&gt;P3&lt;/b&gt;" in page
    failed = {"chosen": 0, "error": "ModelConfigError: missing", "candidates": [{"text": "one", "new_tokens": 1}]}
    Job.objects.filter(pk=job.pk).update(choice=failed)
    page = manager_client.get(f"/jobs/{job.pk}/").content.decode()
    assert "The reranker failed (ModelConfigError: missing)" in page and 'data-testid="job-choice"' in page
