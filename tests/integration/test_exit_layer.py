"""The exit layer end to end with real parts: a template with a Chinese ticket, an English MES record (JSON
with a schema) and a screen line, sent from the API and from the form, run by a real model worker (the tiny
model), checked, delivered by a real exits worker to a real receiver that fails at first, and shown on a
board."""

import pytest
from django.utils.html import escape

from edgeportal.boards.models import Board
from edgeportal.delivery.models import Delivery, Destination
from edgeportal.jobs.models import Job
from edgeportal.outputs.models import JobOutput
from tests.conftest import make_template
from tests.delivery.conftest import SECRET
from tests.integration.test_delivery import WORKER_ENV, effective
from tests.integration.workers import wait_until

pytestmark = pytest.mark.integration

MES_SCHEMA = {
    "type": "object",
    "properties": {"line": {"type": "string", "maxLength": 6}, "severity": {"type": "integer"}},
    "required": ["line", "severity"],
}


@pytest.fixture
def incident(manager):
    # The tiny model writes no language: every output is delivered whatever its language check says.
    return make_template(
        slug="incident", title="Incident", body="Line {line} reports: {event}", max_new_tokens=12, deadline_ms=60000,
        outputs=[
            {"name": "ticket", "language": "zh", "instruction": "Summarise for the ticket.", "on_mismatch": "deliver"},
            {"name": "mes", "language": "en", "format": "json", "schema": MES_SCHEMA, "max_new_tokens": 80,
             "from": "ticket", "on_mismatch": "deliver"},
            {"name": "screen", "language": "en", "on_mismatch": "deliver"},
        ],
    )  # fmt: skip


@pytest.fixture(autouse=True)
def local_receivers(settings):
    settings.EDGE_DELIVERY_ALLOWED_SCHEMES = ["http"]
    settings.EDGE_DELIVERY_ALLOWED_HOSTS = ["127.0.0.1:*"]


def test_a_three_output_job_is_checked_delivered_with_retries_and_shown_on_a_board(
    incident, api, manager_client, client, start_worker, start_exits_worker, start_receiver
):
    receiver = start_receiver(secret=SECRET, fail_first=2)
    Destination.objects.create(name="plant-systems", url=receiver.url, secret=SECRET)
    Board.objects.create(slug="line-a", name="Line A", output_names=["screen"], is_public=True)
    start_worker()
    start_exits_worker(**WORKER_ENV)

    answer = api.post({"template": "incident", "variables": {"line": "P3", "event": "current fluctuation"}})
    assert answer.status_code == 202, answer.content
    form = {"template": "incident", "var_line": "C3", "var_event": "a jammed feeder"}
    sent = manager_client.post("/jobs/new/", form)
    assert sent.status_code == 302
    jobs = list(Job.objects.filter(parent=None, has_outputs=True).order_by("pk"))
    assert len(jobs) == 2

    wait_until(lambda: all(job.is_finished for job in Job.objects.filter(pk__in=[j.pk for j in jobs])), timeout=120,
               what="both jobs")  # fmt: skip
    shared = []
    for job in Job.objects.filter(pk__in=[j.pk for j in jobs]).order_by("pk"):
        outputs = {output.name: output for output in job.outputs.all()}
        assert set(outputs) == {"ticket", "mes", "screen"} and job.status == Job.Status.DONE, job.error
        assert all(output.status in (JobOutput.Status.DONE, JobOutput.Status.LANGUAGE_MISMATCH)
                   for output in outputs.values())  # fmt: skip
        assert outputs["mes"].valid is True and isinstance(outputs["mes"].data["severity"], int)
        assert job.output == outputs["ticket"].text
        # The MES record is made from the ticket's text: its run starts once the ticket's has ended, and its
        # prompt reads that text.
        ticket, mes, screen = outputs["ticket"].run, outputs["mes"].run, outputs["screen"].run
        assert mes.created_at >= ticket.finished_at and outputs["ticket"].text in mes.prompt
        shared.append(ticket.batch_id == screen.batch_id)
    # Outputs from the request are queued together and batched like any jobs: the first job's, queued into an
    # idle worker's window, share one (the second job's may meet a window closing).
    assert shared[0]

    # The manager's job page shows each output with its checks.
    page = manager_client.get(sent["Location"]).content.decode()
    for name in ("ticket", "mes", "screen"):
        assert f'data-testid="job-output-{name}"' in page

    # Six deliveries (two jobs, three outputs, one destination), each acted on once despite the 503s.
    wait_until(lambda: Delivery.objects.filter(status="delivered").count() == 6, timeout=60, what="deliveries")
    requests = receiver.requests()
    assert [r["answer"] for r in requests[:2]] == [503, 503]
    for delivery in Delivery.objects.select_related("output"):
        assert effective(requests, delivery.idempotency_key) == 1
        body = next(r["body"] for r in requests if r["key"] == delivery.idempotency_key and r["answer"] == 200)
        assert body["output"] == delivery.output.name and body["text"] == delivery.output.text

    # The API lists every output with its checks.
    body = api.get(answer.json()["id"]).json()
    assert [output["name"] for output in body["outputs"]] == ["ticket", "mes", "screen"]
    mes = body["outputs"][1]
    assert mes["valid"] is True and mes["json"] == JobOutput.objects.get(job_id=body["id"], name="mes").data

    # The board shows the screen outputs (escaped), newest first, without a login.
    client.logout()
    page = client.get("/boards/line-a/")
    assert page.status_code == 200
    html = page.content.decode()
    screens = [output.text for output in JobOutput.objects.filter(name="screen").order_by("-finished_at")]
    assert html.count('data-testid="board-output"') == len(screens) == 2
    assert all(escape(text) in html for text in screens)
    tickets = [output.text for output in JobOutput.objects.filter(name="ticket") if len(output.text) > 8]
    assert not any(escape(text) in html for text in tickets if text not in screens)  # no other output's text
