"""The semantic prompt cache with real parts: a template with the cache on, sent from the API, run by a real
worker process (the tiny model beside the real embedding model); a paraphrase is answered from the cache."""

import pytest

from tests.conftest import make_template
from tests.integration.test_pipeline import finished
from tests.integration.workers import wait_until

pytestmark = pytest.mark.integration


def test_a_worker_answers_a_paraphrase_from_the_semantic_cache(api, start_worker):
    make_template(slug="inspect", title="Inspect", body="Camera {camera} found {defect}. Describe it.",
                  max_new_tokens=8, deadline_ms=120_000, semantic_cache=0.93)  # fmt: skip
    start_worker()  # it loads the embedding model beside its own: a template asks for it

    def send(defect: str) -> int:
        response = api.post({"template": "inspect", "variables": {"camera": "C3", "defect": defect}})
        assert response.status_code == 202, response.content
        job_id = response.json()["id"]
        wait_until(finished(job_id), what=f"job {job_id}")
        return job_id

    first = api.get(send("a deep scratch on the left side of the housing")).json()
    second = api.get(send("a deep scratch on the housing's left side")).json()
    opposite = api.get(send("a deep scratch on the right side of the housing")).json()
    assert first["status"] == second["status"] == opposite["status"] == "done"
    assert (first["cache_hit"], first["cache_similarity"]) == (False, None)
    assert second["cache_hit"] == "semantic" and second["cache_similarity"] >= 0.93
    assert second["output"] == first["output"]
    assert opposite["cache_hit"] is False
