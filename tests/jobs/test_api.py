import pytest

from edgeportal.jobs.models import Job
from edgeportal.sources.models import Source


@pytest.fixture(autouse=True)
def _db(db):
    pass


def test_it_accepts_a_free_prompt_and_queues_it_once_committed(api, queue, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = api.post({"prompt": "Describe the dent near the weld seam."})
    assert response.status_code == 202
    assert queue.live_job_ids() == set()  # nothing reaches Redis before the commit
    for callback in callbacks:
        callback()
    assert queue.live_job_ids() == {response.json()["id"]}
    body = response.json()
    job = Job.objects.get(pk=body["id"])
    assert body["status"] == "queued" and body["url"].endswith(f"/api/jobs/{job.pk}")
    assert job.source.name == "camera-c3"


def test_it_renders_a_template_with_its_variables(api, defect_template):
    response = api.post({"template": "defect", "variables": {"camera": "C3", "defect": "a scratch"}})
    assert response.status_code == 202
    job = Job.objects.get(pk=response.json()["id"])
    assert job.prompt == "Camera C3 detected a scratch. Describe it for QA."
    assert job.template == defect_template and job.max_new_tokens == 8


def test_a_job_reads_back_with_nulls_until_known(api):
    job_id = api.post({"prompt": "hello"}).json()["id"]
    body = api.get(job_id).json()
    assert body["status"] == "queued" and body["output"] is None and body["batch_id"] is None
    assert body["latency"] == dict.fromkeys(
        ["queue_wait_ms", "window_wait_ms", "inference_ms", "first_token_ms", "rerank_ms", "total_ms"]
    )
    for key in (
        "id",
        "error",
        "created_at",
        "finished_at",
        "batch_size",
        "prompt_tokens",
        "output_tokens",
        "finish_reason",
    ):
        assert key in body


def test_another_source_cannot_read_the_job(api):
    from edgeportal.sources.services import source_create

    _, other = source_create(name="plc-7", kind="plc")
    job_id = api.post({"prompt": "hello"}).json()["id"]
    assert api.get(job_id, token=other).status_code == 404


@pytest.mark.parametrize(
    ("body", "status", "code", "field"),
    [
        ({}, 400, "missing", "template"),
        ({"template": "nope", "variables": {}}, 400, "unknown_template", "template"),
        ({"template": "defect", "variables": {"camera": "C3"}}, 400, "invalid_variables", "defect"),
        (
            {"template": "defect", "variables": {"camera": "C3", "defect": "x", "mood": "y"}},
            400,
            "invalid_variables",
            "mood",
        ),
        ({"template": "defect", "variables": ["C3"]}, 400, "invalid_variables", "variables"),
        ({"template": "defect", "variables": {"camera": {"a": 1}, "defect": "x"}}, 400, "invalid_variables", "camera"),
        ({"template": 5}, 400, "invalid", "template"),
        ({"prompt": ""}, 400, "empty_prompt", "prompt"),
        ({"prompt": "   \n "}, 400, "empty_prompt", "prompt"),
        ({"prompt": 42}, 400, "invalid", "prompt"),
        ({"prompt": "x" * 5000}, 400, "too_long", "prompt"),
        ({"prompt": "hi", "template": "defect"}, 400, "invalid", "prompt"),
        ({"prompt": "hi", "variables": {"a": "b"}}, 400, "invalid", "variables"),
        ({"prompt": "hi", "colour": "red"}, 400, "unknown_field", "colour"),
        ({"prompt": "hi", "priority": "urgent"}, 400, "invalid", "priority"),
        ({"prompt": "hi", "deadline_ms": 0}, 400, "invalid", "deadline_ms"),
        ({"prompt": "hi", "deadline_ms": "soon"}, 400, "invalid", "deadline_ms"),
        ({"prompt": "hi", "deadline_ms": True}, 400, "invalid", "deadline_ms"),
        ({"prompt": "hi", "deadline_ms": 10**12}, 400, "invalid", "deadline_ms"),
    ],
)
def test_bad_input_gets_a_clear_json_error_and_stores_nothing(api, defect_template, body, status, code, field):
    response = api.post(body)
    assert response.status_code == status
    error = response.json()["error"]
    assert error["code"] == code and error.get("field") == field and error["message"]
    assert Job.objects.count() == 0


@pytest.mark.parametrize(
    "raw",
    ["{bad", "[1, 2]", '"text"', b"\xff\xfe", '{"prompt": ' + "9" * 5000 + "}", "[" * 50_000 + "]" * 50_000],
)
def test_malformed_json_is_refused(api, raw):
    response = api.post(None, raw=raw)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_json"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ('{"prompt": "half a pair \\ud800"}', "prompt"),
        ('{"template": "defect", "variables": {"camera": "\\udfff", "defect": "x"}}', "camera"),
    ],
)
def test_broken_unicode_is_refused(api, defect_template, body, field):
    response = api.post(None, raw=body)
    assert response.status_code == 400
    assert response.json()["error"]["field"] == field
    assert response.json()["error"]["code"] == "encoding"
    assert Job.objects.count() == 0


def test_nul_and_other_control_characters_are_removed_before_storing(api, defect_template):
    response = api.post(
        None, raw='{"template": "defect", "variables": {"camera": "C\\u0000 3", "defect": "a\\u0007 dent"}}'
    )
    assert response.status_code == 202
    assert Job.objects.get().prompt == "Camera C 3 detected a dent. Describe it for QA."


def test_the_prompt_limit_is_configurable(api, settings):
    settings.EDGE_MAX_PROMPT_CHARS = 10
    response = api.post({"prompt": "eleven char"})
    assert response.status_code == 400
    assert "limit is 10" in response.json()["error"]["message"]


def test_an_oversized_body_gets_413(api, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 100
    response = api.post({"prompt": "x" * 200})
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "too_large"


@pytest.mark.parametrize("header", ["", "Bearer", "Bearer wrong-token", "Basic abc"])
def test_a_missing_or_wrong_token_gets_401(client, header):
    response = client.post("/api/jobs", data="{}", content_type="application/json", headers={"Authorization": header})
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthorized"


def test_a_disabled_source_is_refused(api):
    Source.objects.update(is_active=False)
    assert api.post({"prompt": "hi"}).status_code == 401


def test_a_source_restricted_to_templates_cannot_send_free_prompts(api, defect_template):
    Source.objects.update(allow_free_prompts=False)
    response = api.post({"prompt": "hi"})
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "forbidden"
    assert api.post({"template": "defect", "variables": {"camera": "C", "defect": "d"}}).status_code == 202


def test_redis_down_answers_503_and_leaves_no_job(api, redis_down):
    response = api.post({"prompt": "hi"})
    assert response.status_code == 503
    assert "Redis" in response.json()["error"]["message"]
    assert Job.objects.count() == 0


def test_wrong_methods_are_refused(api, client, source_token):
    assert client.get("/api/jobs", headers={"Authorization": f"Bearer {source_token}"}).status_code == 405
    assert client.post("/api/jobs/1", headers={"Authorization": f"Bearer {source_token}"}).status_code == 405


def test_control_characters_are_refused_when_the_guard_is_set_to_reject(api, settings):
    settings.EDGE_GUARD_CONTROL_CHARS = "reject"
    response = api.post({"prompt": "line A\u0007 stops"})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "control_characters"
    assert Job.objects.count() == 0
