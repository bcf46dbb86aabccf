"""The models a node serves, on the web side: a job names its model, and goes to a pool that serves it."""

import pytest
import redis

from edgeportal.core.queueing import get_queue, pools_for
from edgeportal.jobs import entry
from edgeportal.jobs.models import Job
from edgeportal.prompts.services import template_save
from inference.admission import admission_estimate
from inference.pools import Pool
from inference.store.queue import QueuedJob
from tests.conftest import make_template
from tests.tiny_model import tiny_model_dir


@pytest.fixture
def second_model(settings):
    path = tiny_model_dir("b")
    settings.EDGE_MODELS = f"{path.name}={path}"
    return path.name


def served(pool: Pool, *, at: float, lanes=("short", "long")) -> None:
    """As a live worker's heartbeat leaves it: the pool registered, a worker on its lanes."""
    queue = get_queue(pool)
    queue.redis.hset(queue.pools_key, pool.name, at)
    for lane in lanes:
        queue.redis.zadd(queue.lane_workers_key(lane), {f"worker-{pool.name}": at})


def test_a_model_no_worker_served_yet_goes_to_its_cpu_pool(second_model):
    assert pools_for(second_model) == [Pool(second_model, "cpu")]


def test_a_model_goes_to_its_pools_with_a_live_worker_else_to_the_one_served_last(second_model, queue):
    now = queue.now()
    served(Pool(second_model, "cuda"), at=now - 100)
    served(Pool(second_model, "cpu"), at=now - 300)
    assert pools_for(second_model) == [Pool(second_model, "cuda")]  # none live: the one served last
    served(Pool(second_model, "cpu"), at=now)
    assert pools_for(second_model) == [Pool(second_model, "cpu")]
    served(Pool(second_model, "cuda"), at=now)
    assert pools_for(second_model) == [Pool(second_model, "cpu"), Pool(second_model, "cuda")]


def test_a_job_goes_to_the_pool_that_would_finish_it_first(api, second_model, queue):
    cpu, gpu = Pool(second_model, "cpu"), Pool(second_model, "cuda")
    now = queue.now() + 60  # heartbeats that stay fresh however slowly the test runs
    for pool, batch_ms in ((cpu, 2_000), (gpu, 100)):
        served(pool, at=now)
        stats = get_queue(pool).stats
        queue.redis.hset(stats, mapping={"batch_ms:short": batch_ms, "batch_dev_ms:short": 0})
    for job_id in range(1, 9):  # a backlog on the GPU pool: 8 jobs of 100 ms, still sooner than the CPU's batch
        get_queue(gpu).enqueue(QueuedJob(10_000 + job_id, "p", 4, prompt_tokens=4), deadline_in_ms=60_000)
    body = api.post({"prompt": "Describe the dent.", "model": second_model}).json()
    job = Job.objects.get(pk=body["id"])
    assert (job.model, job.pool) == (second_model, gpu.name)
    assert get_queue(cpu).redis.zcard(get_queue(cpu).held_key("short")) == 0  # the place it held there is given up


def test_a_template_names_the_model_its_jobs_run_on(api, second_model):
    make_template(slug="notice", title="Notice", body="Line {line} restarts.", model=second_model)
    body = api.post({"template": "notice", "variables": {"line": "A"}}).json()
    assert body["model"] == second_model
    assert Job.objects.get(pk=body["id"]).pool == Pool(second_model).name
    default = api.post({"template": "notice", "variables": {"line": "B"}, "model": "tiny-model-v1"}).json()
    assert default["model"] == "tiny-model-v1"  # the request's model wins


def test_the_submit_form_offers_a_model_only_where_the_node_serves_several(manager_client, settings):
    assert 'name="model"' not in manager_client.get("/jobs/new/").content.decode()
    path = tiny_model_dir("b")
    settings.EDGE_MODELS = f"{path.name}={path}"
    page = manager_client.get("/jobs/new/").content.decode()
    assert 'name="model"' in page and f'<option value="{path.name}">' in page
    manager_client.post("/jobs/new/", {"prompt": "Line A restarts.", "model": path.name})
    assert Job.objects.get().model == path.name


def test_a_template_whose_model_the_node_no_longer_serves_refuses_its_jobs_clearly(api, second_model, settings):
    make_template(slug="notice", title="Notice", body="Line {line} restarts.", model=second_model)
    settings.EDGE_MODELS = ""  # the model left the node's configuration
    response = api.post({"template": "notice", "variables": {"line": "A"}})
    assert response.status_code == 409
    error = response.json()["error"]
    assert (error["code"], error["field"]) == ("unknown_model", "template")
    assert f"runs on model '{second_model}', which this node no longer serves" in error["message"]


def test_restoring_a_version_that_no_longer_saves_says_why(client, admin_user, second_model, settings):
    client.force_login(admin_user)
    template = make_template(slug="notice", title="Notice", body="Line {line} restarts.", model=second_model)
    template.body = "Line {line} restarts soon."
    template_save(template=template)
    settings.EDGE_MODELS = ""
    response = client.post("/templates/notice/versions/1/rollback/", follow=True)
    assert response.status_code == 200
    assert "Version 1 was not restored: Unknown model; this node serves tiny-model-v1." in response.content.decode()


def test_a_pool_whose_workers_do_not_serve_the_lane_comes_last(api, second_model, queue):
    cpu, gpu = Pool(second_model, "cpu"), Pool(second_model, "cuda")
    now = queue.now() + 60
    served(cpu, at=now, lanes=("long",))  # a long-lane worker only: a short job would wait there for nobody
    served(gpu, at=now)
    queue.redis.hset(get_queue(gpu).stats, mapping={"batch_ms:short": 3_000, "batch_dev_ms:short": 0})
    body = api.post({"prompt": "Describe the dent.", "model": second_model}).json()
    assert Job.objects.get(pk=body["id"]).pool == gpu.name


def test_when_redis_fails_during_admission_no_place_stays_held(api, second_model, queue, monkeypatch):
    cpu, gpu = Pool(second_model, "cpu"), Pool(second_model, "cuda")
    now = queue.now() + 60
    served(cpu, at=now)
    served(gpu, at=now)
    calls = []

    def fails_the_second_time(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise redis.ConnectionError("Redis went away")
        return admission_estimate(*args, **kwargs)

    monkeypatch.setattr(entry, "admission_estimate", fails_the_second_time)
    response = api.post({"prompt": "Describe the dent.", "model": second_model})
    assert response.status_code == 503 and not Job.objects.exists()
    for pool in (cpu, gpu):
        assert queue.redis.zcard(get_queue(pool).held_key("short")) == 0
