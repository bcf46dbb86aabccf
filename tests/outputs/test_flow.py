"""A job with outputs: each output a run of its own, checked when it ends, retried once in a wrong language,
what follows it started, the job finished once every output is final. The runs' ends are stored here as the
worker's sink stores them (edgeportal.jobs.services), with texts chosen to exercise each rule."""

import pytest
from django.db import transaction
from django.utils import timezone

from edgeportal.core.queueing import get_queue, pool_of
from edgeportal.jobs import services
from edgeportal.jobs.entry import job_submit
from edgeportal.jobs.models import Job
from edgeportal.latency.models import JobLatency
from edgeportal.outputs.models import JobOutput
from tests.conftest import make_template

SCHEMA = {"type": "object", "properties": {"code": {"type": "string", "maxLength": 8}}, "required": ["code"]}
# Real commits: runs are queued once their rows are committed.
pytestmark = pytest.mark.django_db(transaction=True)
ZH = "冲压线P3的电流波动超出范围，请检查主电机并更换损坏的电缆。"
EN = "Press line P3 reports a current fluctuation; check the main motor and replace the damaged cable."


@pytest.fixture
def three_outputs():
    return make_template(
        slug="incident", title="Incident", body="Event on line {line}: {event}", max_new_tokens=16,
        deadline_ms=60000,
        outputs=[
            {"name": "ticket", "language": "zh", "instruction": "Summarise for the quality ticket."},
            {"name": "mes", "language": "en", "format": "json", "schema": SCHEMA, "from": "ticket",
             "max_new_tokens": 40},
            {"name": "screen", "language": "en", "instruction": "One line for the screen.", "on_mismatch": "deliver"},
        ],
    )  # fmt: skip


def submit(template="incident", **values):
    variables = {"line": "P3", "event": "current fluctuation on the main motor", **values}
    return job_submit(template_slug=template, variables=variables, allow_free_prompt=False)


def outputs(job) -> dict[str, JobOutput]:
    return {output.name: output for output in JobOutput.objects.filter(job=job).select_related("run")}


def end(run: Job, text: str = "", *, status=Job.Status.DONE, error: str = "") -> None:
    """Store a run's end as the sink does: its row, then jobs_ended in the same transaction."""
    with transaction.atomic():
        run.refresh_from_db()
        run.status, run.output, run.error, run.output_tokens = status, text, error, len(text) // 2
        run.finished_at = timezone.now()
        run.save()
        services.jobs_ended([run])


def test_outputs_from_the_request_are_queued_as_runs_and_those_made_from_another_wait(three_outputs):
    job = submit()
    assert job.has_outputs and job.status == Job.Status.QUEUED
    made = outputs(job)
    assert [o.name for o in JobOutput.objects.filter(job=job)] == ["ticket", "mes", "screen"]
    assert made["mes"].status == JobOutput.Status.PENDING and made["mes"].run is None
    for name in ("ticket", "screen"):
        run = made[name].run
        assert made[name].status == JobOutput.Status.RUNNING and made[name].attempts == 1
        assert run.parent == job and run.deadline_at == job.deadline_at and run.priority == job.priority
        assert "Event on line P3" in run.prompt and "Chinese" in made["ticket"].run.prompt
        assert run.pk in get_queue(pool_of(run.pool)).live_job_ids()
    assert job.pk not in get_queue(pool_of(made["ticket"].run.pool)).live_job_ids()  # the job itself runs nothing


def test_a_right_language_finishes_the_output_and_starts_what_is_made_from_it(three_outputs):
    job = submit()
    end(outputs(job)["ticket"].run, ZH)
    made = outputs(job)
    assert made["ticket"].status == JobOutput.Status.DONE and made["ticket"].language_detected == "zh"
    assert made["ticket"].text == ZH and made["ticket"].latency_ms > 0
    mes = made["mes"]
    assert mes.status == JobOutput.Status.RUNNING and ZH in mes.run.prompt and "JSON Schema" in mes.run.prompt
    assert mes.run.decoding["json_schema"]  # constrained to its schema by the runtime
    job.refresh_from_db()
    assert not job.is_finished


def test_a_wrong_language_is_retried_once_more_strongly_then_held(three_outputs):
    job = submit()
    first = outputs(job)["ticket"].run
    end(first, EN)
    ticket = outputs(job)["ticket"]
    assert ticket.status == JobOutput.Status.RUNNING and ticket.attempts == 2 and ticket.run != first
    assert "Important" in ticket.run.prompt and "Chinese" in ticket.run.prompt
    end(ticket.run, EN)
    ticket = outputs(job)["ticket"]
    assert ticket.status == JobOutput.Status.LANGUAGE_MISMATCH and ticket.language_detected == "en"
    assert not ticket.deliverable  # on_mismatch: hold (the default)
    assert outputs(job)["mes"].status == JobOutput.Status.RUNNING  # its text is still an input


def test_a_mismatch_is_delivered_when_the_output_says_so(three_outputs):
    job = submit()
    end(outputs(job)["screen"].run, ZH)
    end(outputs(job)["screen"].run, ZH)
    screen = outputs(job)["screen"]
    assert screen.status == JobOutput.Status.LANGUAGE_MISMATCH and screen.deliverable


def test_the_job_is_done_once_every_output_is_final_with_its_first_output_as_its_text(three_outputs):
    job = submit()
    end(outputs(job)["ticket"].run, ZH)
    end(outputs(job)["screen"].run, EN)
    job.refresh_from_db()
    assert job.status == Job.Status.QUEUED  # mes still runs
    end(outputs(job)["mes"].run, '{"code": "P3 motor"}')
    made = outputs(job)
    assert made["mes"].status == JobOutput.Status.DONE and made["mes"].valid is True
    assert made["mes"].data == {"code": "P3 motor"}
    job.refresh_from_db()
    assert job.status == Job.Status.DONE and job.output == ZH and job.finished_at is not None


def test_an_invalid_json_output_is_marked_invalid_and_never_valid(three_outputs):
    job = submit()
    end(outputs(job)["ticket"].run, ZH)
    end(outputs(job)["mes"].run, '{"severity": 3}')
    mes = outputs(job)["mes"]
    assert mes.status == JobOutput.Status.INVALID and mes.valid is False and mes.data is None
    assert "code" in mes.error and mes.attempts == 1 and not mes.deliverable


def test_a_failed_input_fails_what_is_made_from_it_and_the_job(three_outputs):
    job = submit()
    end(outputs(job)["ticket"].run, status=Job.Status.FAILED, error="the model failed")
    end(outputs(job)["screen"].run, EN)
    made = outputs(job)
    assert made["ticket"].status == JobOutput.Status.FAILED and made["mes"].status == JobOutput.Status.FAILED
    assert "ticket" in made["mes"].error
    job.refresh_from_db()
    assert job.status == Job.Status.FAILED and "ticket" in job.error


def test_an_expired_run_expires_its_output_and_the_job(three_outputs):
    job = submit()
    end(outputs(job)["ticket"].run, status=Job.Status.EXPIRED, error="expired")
    end(outputs(job)["screen"].run, EN)
    job.refresh_from_db()
    assert outputs(job)["ticket"].status == JobOutput.Status.EXPIRED and job.status == Job.Status.EXPIRED


def test_a_template_without_outputs_keeps_its_single_text_output(defect_template):
    job = job_submit(template_slug="defect", variables={"camera": "C3", "defect": "a dent"}, allow_free_prompt=False)
    assert not job.has_outputs and not JobOutput.objects.filter(job=job).exists()
    assert job.pk in get_queue(pool_of(job.pool)).live_job_ids()


def test_the_sweep_never_queues_a_job_with_outputs_itself(three_outputs):
    job = submit()
    get_queue(pool_of(outputs(job)["ticket"].run.pool)).withdraw([o.run_id for o in outputs(job).values() if o.run])
    services.jobs_requeue_lost(grace_s=0)
    live = get_queue(pool_of(job.pool)).live_job_ids()
    assert job.pk not in live and outputs(job)["ticket"].run_id in live


def test_the_api_lists_each_output(three_outputs, api, source_token):
    job = submit()
    job.source = None
    end(outputs(job)["ticket"].run, ZH)
    from edgeportal.jobs.selectors import job_as_json

    body = job_as_json(Job.objects.get(pk=job.pk))
    by_name = {output["name"]: output for output in body["outputs"]}
    assert by_name["ticket"]["status"] == "done" and by_name["ticket"]["text"] == ZH
    assert by_name["ticket"]["language_detected"] == "zh" and by_name["mes"]["json"] is None
    assert by_name["mes"]["status"] == "running" and by_name["mes"]["text"] is None


def test_a_worker_runs_every_output_to_its_end_and_the_json_one_holds_its_schema(make_worker):
    """The tiny model writes noise in no language: the texts are retried once and held, but the MES output,
    constrained to its schema while decoding, is valid JSON whatever the model prefers."""
    make_template(
        slug="both", title="Both", body="Event on line {line}: {event}", max_new_tokens=16, deadline_ms=60000,
        outputs=[{"name": "ticket", "language": "zh"},
                 {"name": "mes", "language": "en", "format": "json", "schema": SCHEMA, "max_new_tokens": 40}],
    )  # fmt: skip
    job = submit("both")
    worker = make_worker()
    for _ in range(12):
        job.refresh_from_db()
        if job.is_finished:
            break
        worker.batch_step()
    assert job.is_finished, outputs(job)
    made = outputs(job)
    assert all(output.is_final and 1 <= output.attempts <= 2 for output in made.values())
    for output in made.values():
        if output.status == JobOutput.Status.LANGUAGE_MISMATCH:
            assert output.attempts == 2 and output.language_detected != output.language
    mes = made["mes"]
    assert mes.status in (JobOutput.Status.DONE, JobOutput.Status.LANGUAGE_MISMATCH), mes.error
    assert mes.valid is True and set(mes.data) == {"code"} and len(mes.data["code"]) <= 8
    # One latency record for the request, end to end, made of its runs' stages; none for the runs themselves.
    runs = [output.run for output in made.values()]
    assert not JobLatency.objects.filter(job__in=runs).exists()
    record = JobLatency.objects.get(job=job)
    assert record.status == job.status and record.batch_size is None
    assert record.total_ms >= max(output.latency_ms for output in made.values()) - 1
    assert 0 <= record.queue_wait_ms <= min((run.picked_at - job.created_at).total_seconds() * 1000 for run in runs)
    batches = {run.batch_id: run.batch.inference_ms for run in runs}
    assert record.inference_ms == pytest.approx(sum(batches.values())) and record.inference_ms > 0


def test_the_openai_answer_is_the_first_output_with_every_output_in_its_edgeportal_object(three_outputs):
    from edgeportal.openai_api.requests import parse_request
    from edgeportal.openai_api.responses import completion_body
    from edgeportal.openai_api.selectors import finished_job

    job = submit()
    end(outputs(job)["ticket"].run, ZH)
    end(outputs(job)["screen"].run, EN)
    end(outputs(job)["mes"].run, '{"code": "P3"}')
    request = parse_request({"template": "incident", "variables": {"line": "P3", "event": "x"}}, chat=True)
    body = completion_body(finished_job(job), request)
    assert body["choices"][0]["message"]["content"] == ZH
    listed = body["edgeportal"]["outputs"]
    assert [output["name"] for output in listed] == ["ticket", "mes", "screen"]
    assert listed[1]["json"] == {"code": "P3"} and listed[2]["text"] == EN


def test_a_retry_too_late_for_the_deadline_leaves_the_first_text_as_a_mismatch(three_outputs):
    job = submit()
    Job.objects.filter(pk=job.pk).update(deadline_at=timezone.now())  # the deadline passed while it ran
    end(outputs(job)["screen"].run, ZH)
    screen = outputs(job)["screen"]
    assert screen.status == JobOutput.Status.LANGUAGE_MISMATCH and screen.attempts == 1 and screen.text == ZH
    assert screen.deliverable and screen.finished_at is not None


def test_json_nested_beyond_reason_is_invalid_not_an_error(three_outputs):
    job = submit()
    end(outputs(job)["ticket"].run, ZH)
    end(outputs(job)["mes"].run, "[" * 5000 + "]" * 5000)
    mes = outputs(job)["mes"]
    assert mes.status == JobOutput.Status.INVALID and mes.valid is False


def test_an_output_that_cannot_be_checked_fails_alone_and_the_batch_is_stored(three_outputs):
    job = submit()
    JobOutput.objects.filter(job=job, name="screen").update(spec={"name": "screen", "format": "nonsense"})
    end(outputs(job)["screen"].run, EN)
    end(outputs(job)["ticket"].run, ZH)
    made = outputs(job)
    assert made["screen"].status == JobOutput.Status.FAILED and "could not be checked" in made["screen"].error
    assert made["ticket"].status == JobOutput.Status.DONE


def test_a_retry_that_expires_leaves_the_first_text_as_a_mismatch(three_outputs):
    job = submit()
    end(outputs(job)["screen"].run, ZH)
    end(outputs(job)["screen"].run, status=Job.Status.EXPIRED, error="expired: its deadline passed")
    screen = outputs(job)["screen"]
    assert screen.status == JobOutput.Status.LANGUAGE_MISMATCH and screen.text == ZH and screen.attempts == 2
    assert "expired" in screen.error and screen.deliverable
