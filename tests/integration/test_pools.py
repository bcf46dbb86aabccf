"""Two pools served at once: two different tiny models, each with its own real worker process, queue,
measurements and cache entries."""

import pytest

from edgeportal.core.queueing import get_queue
from edgeportal.jobs.models import Job
from inference.pools import Pool
from tests.integration.workers import wait_until
from tests.tiny_model import tiny_model_dir

pytestmark = pytest.mark.integration


@pytest.fixture
def second_model(settings):
    """The node serves a second model beside the default (EDGE_MODELS), known by its folder's name."""
    path = tiny_model_dir("b")
    settings.EDGE_MODELS = f"{path.name}={path}"
    return path


def done(*job_ids):
    return lambda: Job.objects.filter(pk__in=job_ids, status=Job.Status.DONE).count() == len(job_ids)


def test_two_models_run_in_pools_of_their_own_with_their_own_workers_measurements_and_cache(
    api, start_worker, second_model, tiny_model_path, client, admin_user
):
    default, second = Pool(tiny_model_path.name), Pool(second_model.name)
    worker_a = start_worker("wa", EDGE_MODELS=f"{second_model.name}={second_model}")
    worker_b = start_worker("wb", EDGE_MODEL=second_model.name, EDGE_MODELS=f"{second_model.name}={second_model}")
    prompt = {"prompt": "Camera C3 detected a dent near the left weld seam.", "deadline_ms": 120_000}

    on_default = [api.post(prompt).json()["id"], api.post({**prompt, "prompt": "Line A restarts."}).json()["id"]]
    on_second = [api.post({**prompt, "model": second.model}).json()["id"]]
    wait_until(done(*on_default, *on_second), timeout=120, what="jobs of both pools")

    jobs = {job.pk: job for job in Job.objects.all()}
    assert {jobs[i].worker for i in on_default} == {worker_a.name}
    assert {jobs[i].worker for i in on_second} == {worker_b.name}
    assert {jobs[i].pool for i in on_default} == {default.name} and jobs[on_second[0]].pool == second.name
    assert api.get(on_second[0]).json()["model"] == second.model
    assert jobs[on_second[0]].output != jobs[on_default[0]].output  # other weights, other words
    # Each pool measured its own batches; nothing was queued in the other's lanes.
    for pool in (default, second):
        queue = get_queue(pool)
        assert queue.measurements().get("batch_ms:short", 0) > 0
        assert queue.lane_depths() == {"short": 0, "long": 0}
        assert [w["name"] for w in queue.workers()] == [{default: worker_a, second: worker_b}[pool].name]

    # The same prompt on the other model is not answered from the first one's cache, and a repeat on the
    # first model is.
    repeat_on_second = api.post({**prompt, "model": second.model}).json()["id"]
    repeat_on_default = api.post(prompt).json()["id"]
    wait_until(done(repeat_on_second, repeat_on_default), timeout=120, what="the repeats")
    assert Job.objects.get(pk=repeat_on_default).cache_hit
    assert Job.objects.get(pk=repeat_on_default).output == jobs[on_default[0]].output
    assert Job.objects.get(pk=repeat_on_second).cache_hit  # its own model's first answer
    assert Job.objects.get(pk=repeat_on_second).output == jobs[on_second[0]].output

    # The dashboard and /metrics show each pool.
    client.force_login(admin_user)
    page = client.get("/dashboard/", headers={"HX-Request": "true"}).content.decode()
    assert default.name in page and second.name in page
    metrics = client.get("/metrics").content.decode()
    assert f'edgeportal_pool_workers_alive{{pool="{second.name}"}} 1.0' in metrics
    assert f'edgeportal_pool_queue_depth{{lane="short",pool="{default.name}"}} 0.0' in metrics


def test_a_job_for_a_model_the_node_does_not_serve_is_refused_with_the_models_it_serves(api, second_model):
    response = api.post({"prompt": "Line A restarts.", "model": "gpt-4"})
    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["code"], error["field"]) == ("unknown_model", "model")
    assert second_model.name in error["message"] and "tiny-model-v1" in error["message"]
    assert not Job.objects.exists()
