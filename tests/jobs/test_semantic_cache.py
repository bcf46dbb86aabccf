"""The semantic prompt cache end to end in this process: a template's jobs through the entry, batches on the real
(tiny) model with the real embedding model, a paraphrase answered from the cache with its similarity, a
near-miss and an opposite answered by the model, and the cache's switches (TTL 0, clearing it)."""

import pytest

from edgeportal.core.queueing import get_settings_store
from edgeportal.jobs.entry import PAGE_DECODING, job_submit
from edgeportal.jobs.models import Job
from edgeportal.jobs.selectors import job_as_json
from edgeportal.outputs.reranking import reranker_embedder, reranker_pick
from edgeportal.prompts.cache import cache_clear
from edgeportal.prompts.semantic_cache import VALUE_SEPARATOR, semantic_lookup, semantic_store
from inference.candidates import WithCandidates
from inference.decoding import Decoding
from inference.semantic_cache import WithSemanticCache
from tests.conftest import make_template
from tests.monitoring.scrape import grew, scrape

pytestmark = pytest.mark.django_db(transaction=True)

FIRST = "a deep scratch on the left side of the housing"


@pytest.fixture
def caching_worker(make_worker, tiny_model):
    """The engine as the Celery worker builds it (edgeportal.celery.DatabaseBatchLoop.engine_for_jobs)."""
    picked = WithCandidates(tiny_model, reranker_pick(reranker_embedder))
    return make_worker(model=WithSemanticCache(picked, semantic_lookup(reranker_embedder), semantic_store))


@pytest.fixture
def inspection(db):
    return make_template(slug="inspect", title="Inspect", body="Camera {camera} found {defect}. Describe it.",
                         max_new_tokens=8, semantic_cache=0.93)  # fmt: skip


def run(worker, camera: str, defect: str) -> Job:
    job = job_submit(template_slug="inspect", variables={"camera": camera, "defect": defect},
                     decoding=PAGE_DECODING, allow_free_prompt=False)  # fmt: skip
    if job.status != Job.Status.DONE:  # done already: the exact cache answered at the entry
        assert worker.batch_step()
    job.refresh_from_db()
    assert job.status == Job.Status.DONE
    return job


def test_a_paraphrase_takes_the_earlier_answer_with_its_similarity(caching_worker, inspection, manager_client):
    first = run(caching_worker, "C3", FIRST)
    decoding = Decoding.from_dict(first.decoding)
    assert (decoding.semantic_threshold, decoding.semantic_text) == (0.93, f"C3{VALUE_SEPARATOR}{FIRST}")
    assert not first.cache_hit and first.cache_similarity is None

    second = run(caching_worker, "C3", "a deep scratch on the housing's left side")
    assert second.cache_hit and second.cache_similarity >= 0.93 and second.output == first.output
    assert second.cache_key != first.cache_key  # not the exact cache: another prompt
    body = job_as_json(second)
    assert (body["cache_hit"], body["cache_similarity"]) == ("semantic", second.cache_similarity)
    assert job_as_json(first)["cache_hit"] is False
    page = manager_client.get(f"/jobs/{second.pk}/").content.decode()
    assert 'data-testid="semantic-hit"' in page


def test_metrics_count_semantic_hits_apart_from_exact_ones(caching_worker, inspection, client):
    run(caching_worker, "C3", FIRST)
    before = scrape(client)
    run(caching_worker, "C3", "a deep scratch on the housing's left side")  # semantic
    run(caching_worker, "C3", FIRST)  # exact, at the entry
    after = scrape(client)
    assert grew(before, after, "edgeportal_cache_hits_total", kind="semantic") == 1
    assert grew(before, after, "edgeportal_cache_hits_total", kind="exact") == 1


def test_a_near_miss_and_an_opposite_are_answered_by_the_model(caching_worker, inspection):
    run(caching_worker, "C3", FIRST)
    other_camera = run(caching_worker, "C4", FIRST)  # cosine about 0.93 on the embedding alone
    other_side = run(caching_worker, "C3", FIRST.replace("left", "right"))  # cosine 0.997
    for job in (other_camera, other_side):
        assert not job.cache_hit and job.cache_similarity is None
    again = run(caching_worker, "C4", FIRST)  # the same again: the exact cache, at the entry
    assert again.cache_hit and again.cache_similarity is None and again.output == other_camera.output


def test_with_the_cache_off_on_the_tuning_page_nothing_is_kept_or_taken(caching_worker, inspection):
    get_settings_store().update(cache_ttl_s=0)
    run(caching_worker, "C3", FIRST)
    assert not run(caching_worker, "C3", "a deep scratch on the housing's left side").cache_hit


def test_clearing_the_cache_forgets_the_semantic_entries_too(caching_worker, inspection):
    run(caching_worker, "C3", FIRST)
    assert cache_clear() == 2  # the exact answer and the template's semantic group
    assert not run(caching_worker, "C3", "a deep scratch on the housing's left side").cache_hit


def test_a_hit_keeps_its_own_prompt_count_and_its_answer_never_becomes_an_exact_one(caching_worker, inspection):
    first = run(caching_worker, "C3", FIRST)
    paraphrase = "a deep scratch on the housing's left side and nothing else"
    second = run(caching_worker, "C3", paraphrase)
    assert (
        second.cache_similarity is not None and second.prompt_tokens > first.prompt_tokens
    )  # its own prompt, chat and all
    inspection.semantic_cache = None  # turned off: the same request again is the model's to answer
    inspection.save()
    third = run(caching_worker, "C3", paraphrase)
    assert not third.cache_hit and third.batch_id != second.batch_id


def test_a_batch_the_cache_answered_whole_leaves_the_batch_time_measurements_alone(caching_worker, inspection, queue):
    def batch_times():  # not the arrival gap: the jobs did arrive
        return {key: value for key, value in queue.measurements().items() if key.startswith(("batch_", "line:"))}

    run(caching_worker, "C3", FIRST)
    before = batch_times()
    assert run(caching_worker, "C3", "a deep scratch on the housing's left side").cache_similarity is not None
    assert batch_times() == before and before


def test_a_request_the_encoder_cannot_read_whole_is_neither_kept_nor_looked_up(caching_worker, inspection):
    # all-MiniLM-L6-v2 knows few Chinese characters: these two would embed alike
    run(caching_worker, "C3", "外壳有深划痕")
    assert not run(caching_worker, "C3", "外壳有裂纹").cache_hit
