"""Deliveries: made for the destinations an output matches, sent once per claim, retried with backoff, dead
after the last attempt, resumed by the sweep, re-sent by admins; always with the same Idempotency-Key."""

import json
from datetime import timedelta

import pytest
import redis
from django.utils import timezone

from edgeportal.delivery import services
from edgeportal.delivery.models import Delivery
from edgeportal.delivery.services import (
    NOT_DUE,
    STALE,
    deliveries_create,
    deliveries_resend,
    deliveries_resume,
    delivery_send,
)
from edgeportal.outputs.models import JobOutput
from edgeportal.sources.models import Source
from tests.conftest import make_template
from tests.delivery.conftest import make_destination, make_output
from tests.monitoring.scrape import grew, scrape

pytestmark = pytest.mark.django_db


@pytest.fixture
def queued(monkeypatch):
    """The deliver tasks queued (delivery id, countdown), instead of messages to Redis."""
    sent = []
    monkeypatch.setattr(services, "queue_deliveries", lambda ids, countdown_s=0.0: sent.extend(
        (pk, countdown_s) for pk in ids))  # fmt: skip
    return sent


def create(output, captured):
    with captured(execute=True):
        return deliveries_create(output=output)


def test_an_output_gets_one_delivery_per_matching_destination_queued_once_committed(
    queued, django_capture_on_commit_callbacks
):
    first, second = make_destination(), make_destination()
    make_destination(is_active=False)
    make_destination(output_names=["mes"])
    output = make_output()
    with django_capture_on_commit_callbacks() as callbacks:
        deliveries = deliveries_create(output=output)
        assert queued == []  # nothing is queued before the transaction commits
    for callback in callbacks:
        callback()
    assert {d.destination for d in deliveries} == {first, second}
    assert sorted(pk for pk, _ in queued) == sorted(d.pk for d in deliveries)
    assert {d.status for d in deliveries} == {Delivery.Status.PENDING}


def test_making_them_twice_makes_nothing_new_and_queues_nothing_new(queued, django_capture_on_commit_callbacks):
    make_destination()
    output = make_output()
    [delivery] = create(output, django_capture_on_commit_callbacks)
    [again] = create(output, django_capture_on_commit_callbacks)
    assert again.pk == delivery.pk and len(queued) == 1


def test_the_idempotency_key_names_job_output_and_destination_and_the_body_is_the_output(
    queued, django_capture_on_commit_callbacks
):
    source = Source.objects.create(name="camera-c3", token_hash="x" * 64)
    template = make_template(slug="incident", title="Incident", body="Line {line} stopped.")
    destination = make_destination()
    output = make_output(template=template, source=source, format="json", valid=True, data={"line": "A"})
    [delivery] = create(output, django_capture_on_commit_callbacks)
    assert delivery.idempotency_key.startswith(f"job-{output.job_id}-ticket-dest-{destination.pk}-")
    body = json.loads(delivery.body)
    assert body["idempotency_key"] == delivery.idempotency_key
    assert body["job_id"] == output.job_id and body["output"] == "ticket" and body["status"] == "done"
    assert (body["language"], body["language_detected"], body["format"], body["valid"]) == ("zh", "zh", "json", True)
    assert body["text"] == "A 线卡料，请检查。" and body["data"] == {"line": "A"}
    assert (body["template"], body["source"]) == ("incident", "camera-c3")
    assert body["finished_at"] == output.finished_at.isoformat()


def test_destinations_are_chosen_by_output_name_template_and_source(queued, django_capture_on_commit_callbacks):
    camera = Source.objects.create(name="camera-c3", token_hash="c" * 64)
    plc = Source.objects.create(name="plc-7", token_hash="p" * 64)
    incident = make_template(slug="incident", title="Incident", body="Line {line} stopped.")
    notice = make_template(slug="notice", title="Notice", body="Line {line} restarts.")
    everything = make_destination(name="everything")
    tickets = make_destination(name="tickets", output_names=["ticket", "mes"])
    screens = make_destination(name="screens", output_names=["screen"])
    incidents = make_destination(name="incidents")
    incidents.templates.add(incident)
    cameras = make_destination(name="cameras")
    cameras.sources.add(camera)

    def names(output):
        return {d.destination.name for d in create(output, django_capture_on_commit_callbacks)}

    assert names(make_output(template=incident, source=camera)) == {"everything", "tickets", "incidents", "cameras"}
    assert names(make_output(name="screen", template=notice, source=plc)) == {"everything", "screens"}
    assert names(make_output()) == {everything.name, tickets.name}  # a free prompt from a person
    assert screens.pk and incidents.pk and cameras.pk


def test_an_output_that_is_not_deliverable_gets_no_delivery(queued, django_capture_on_commit_callbacks):
    make_destination()
    assert create(make_output(status=JobOutput.Status.INVALID), django_capture_on_commit_callbacks) == []
    held = make_output(status=JobOutput.Status.LANGUAGE_MISMATCH, spec={"on_mismatch": "hold"})
    assert create(held, django_capture_on_commit_callbacks) == []
    delivered_anyway = make_output(status=JobOutput.Status.LANGUAGE_MISMATCH, spec={"on_mismatch": "deliver"})
    assert len(create(delivered_anyway, django_capture_on_commit_callbacks)) == 1


def make_delivery(receiver_url, captured, **destination_fields):
    make_destination(url=receiver_url, **destination_fields)
    [delivery] = create(make_output(), captured)
    return delivery


def test_a_2xx_delivers_it_in_one_attempt_signed_and_keyed(receiver, queued, django_capture_on_commit_callbacks,
                                                            client):  # fmt: skip
    server = receiver()
    delivery = make_delivery(server.url, django_capture_on_commit_callbacks, headers={"Authorization": "Bearer t"})
    before = scrape(client)
    with django_capture_on_commit_callbacks(execute=True):  # metrics count what committed
        assert delivery_send(delivery_id=delivery.pk) == Delivery.Status.DELIVERED
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.response_code, delivery.last_error) == (
        "delivered",
        1,
        200,
        "",
    )
    assert delivery.delivered_at is not None and delivery.lease_until is None
    [request] = server.requests
    assert request["key"] == delivery.idempotency_key and request["signature_ok"]
    assert request["authorization"] == "Bearer t" and request["body"] == json.loads(delivery.body)
    assert grew(before, scrape(client), "edgeportal_delivery_attempts_total", outcome="delivered") == 1
    assert delivery_send(delivery_id=delivery.pk) == NOT_DUE  # a second task for it does nothing
    assert len(server.requests) == 1


def test_a_failure_is_retried_after_a_jittered_backoff_then_dead_after_the_last_attempt(
    receiver, queued, django_capture_on_commit_callbacks, client, settings
):
    server = receiver(fail_first=100)
    delivery = make_delivery(server.url, django_capture_on_commit_callbacks)
    before = scrape(client)
    started = timezone.now()
    with django_capture_on_commit_callbacks(execute=True):
        assert delivery_send(delivery_id=delivery.pk) == Delivery.Status.RETRYING
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.response_code) == ("retrying", 1, 503)
    assert delivery.last_error == "HTTP 503: busy, try again"
    wait = (delivery.next_attempt_at - started).total_seconds()
    assert 0.05 <= wait <= 0.2  # base 100 ms: between half and all of it
    assert queued[-1][0] == delivery.pk and 0.05 <= queued[-1][1] <= 0.1
    assert delivery_send(delivery_id=delivery.pk) == NOT_DUE  # not before its time

    for _ in (2, 3):
        Delivery.objects.filter(pk=delivery.pk).update(next_attempt_at=timezone.now())
        with django_capture_on_commit_callbacks(execute=True):
            outcome = delivery_send(delivery_id=delivery.pk)
    delivery.refresh_from_db()
    assert outcome == Delivery.Status.DEAD and (delivery.status, delivery.attempts) == ("dead", 3)
    assert len(server.requests) == 3 and {r["key"] for r in server.requests} == {delivery.idempotency_key}
    assert [r["attempt"] for r in server.requests] == ["1", "2", "3"]
    after = scrape(client)
    assert grew(before, after, "edgeportal_delivery_attempts_total", outcome="failed") == 3
    assert grew(before, after, "edgeportal_delivery_dead_letters_total") == 1
    assert delivery_send(delivery_id=delivery.pk) == NOT_DUE


def test_a_url_the_settings_no_longer_allow_is_dead_lettered_at_once_without_a_request(
    receiver, queued, django_capture_on_commit_callbacks, settings
):
    server = receiver()
    delivery = make_delivery(server.url, django_capture_on_commit_callbacks)
    settings.EDGE_DELIVERY_ALLOWED_HOSTS = ["*.plant.local"]
    assert delivery_send(delivery_id=delivery.pk) == Delivery.Status.DEAD
    delivery.refresh_from_db()
    assert delivery.status == "dead" and delivery.attempts == 1
    assert delivery.last_error.startswith("URL refused: the host 127.0.0.1:")
    assert "EDGE_DELIVERY_ALLOWED_HOSTS" in delivery.last_error
    assert server.requests == []


def test_a_destination_made_inactive_meanwhile_dead_letters_its_waiting_deliveries(
    receiver, queued, django_capture_on_commit_callbacks
):
    server = receiver()
    delivery = make_delivery(server.url, django_capture_on_commit_callbacks)
    delivery.destination.is_active = False
    delivery.destination.save()
    assert delivery_send(delivery_id=delivery.pk) == Delivery.Status.DEAD
    assert Delivery.objects.get(pk=delivery.pk).last_error == "the destination is not active"
    assert server.requests == []


def test_only_one_of_two_claims_wins(queued, django_capture_on_commit_callbacks):
    delivery = make_delivery("http://127.0.0.1:9/", django_capture_on_commit_callbacks)
    now = timezone.now()
    first = services._claim(delivery.pk, now)
    second = services._claim(delivery.pk, now)
    assert first is not None and first.attempts == 1 and second is None
    delivery.refresh_from_db()
    assert delivery.status == "sending" and delivery.attempts == 1
    assert delivery.lease_until == now + timedelta(seconds=2 + 5)  # the destination's timeout plus the grace


def test_an_attempt_whose_delivery_the_sweep_moved_on_records_nothing(queued, django_capture_on_commit_callbacks):
    delivery = make_delivery("http://127.0.0.1:9/", django_capture_on_commit_callbacks)
    claimed = services._claim(delivery.pk, timezone.now())
    Delivery.objects.filter(pk=delivery.pk).update(lease_until=timezone.now() - timedelta(seconds=1))
    deliveries_resume()
    services._claim(delivery.pk, timezone.now())  # the next attempt holds it now
    assert services._record_failure(claimed, error="HTTP 500", response_code=500) == STALE
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == ("sending", 2)
    # ... but a 2xx, however late, is the truth: the receiver has it.
    assert services._record_delivered(claimed, response_code=200) == "delivered"
    assert Delivery.objects.get(pk=delivery.pk).status == "delivered"


def test_the_sweep_sends_again_a_delivery_whose_worker_died_mid_request(queued, django_capture_on_commit_callbacks,
                                                                        client):  # fmt: skip
    delivery = make_delivery("http://127.0.0.1:9/", django_capture_on_commit_callbacks)
    services._claim(delivery.pk, timezone.now())
    queued.clear()
    with django_capture_on_commit_callbacks(execute=True):
        assert deliveries_resume() == 0  # its lease still runs
    before = scrape(client)
    later = timezone.now() + timedelta(seconds=2 + 5 + 1)
    with django_capture_on_commit_callbacks(execute=True):
        assert deliveries_resume(now=later) == 1
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == ("retrying", 1)
    assert "lease ran out" in delivery.last_error and delivery.next_attempt_at == later
    assert queued == [(delivery.pk, 0.0)]
    assert grew(before, scrape(client), "edgeportal_delivery_attempts_total", outcome="failed") == 1


def test_the_sweep_dead_letters_a_delivery_whose_last_attempt_was_lost(queued, django_capture_on_commit_callbacks):
    delivery = make_delivery("http://127.0.0.1:9/", django_capture_on_commit_callbacks)
    Delivery.objects.filter(pk=delivery.pk).update(attempts=2)
    services._claim(delivery.pk, timezone.now())
    queued.clear()
    with django_capture_on_commit_callbacks(execute=True):
        assert deliveries_resume(now=timezone.now() + timedelta(minutes=1)) == 0
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == ("dead", 3) and queued == []


def test_the_sweep_queues_again_a_waiting_delivery_whose_task_was_lost_but_not_one_merely_due(
    queued, django_capture_on_commit_callbacks
):
    delivery = make_delivery("http://127.0.0.1:9/", django_capture_on_commit_callbacks)
    queued.clear()
    with django_capture_on_commit_callbacks(execute=True):
        assert deliveries_resume(now=timezone.now() + timedelta(seconds=2)) == 0  # in the grace: its task may run
        later = timezone.now() + timedelta(seconds=6)
        assert deliveries_resume(now=later) == 1
        assert deliveries_resume(now=later + timedelta(seconds=1)) == 0  # queued again just now: not again yet
    assert queued == [(delivery.pk, 0.0)]


def test_the_sweep_queues_nothing_again_while_the_exits_queue_still_holds_messages(
    queued, django_capture_on_commit_callbacks, redis_prefix, settings
):
    make_delivery("http://127.0.0.1:9/", django_capture_on_commit_callbacks)
    queued.clear()
    client = redis.Redis.from_url(settings.REDIS_URL)
    client.rpush(f"{redis_prefix}:exits", "a message no worker took yet")  # the worker is down or busy
    later = timezone.now() + timedelta(seconds=6)
    with django_capture_on_commit_callbacks(execute=True):
        assert deliveries_resume(now=later) == 0
        client.delete(f"{redis_prefix}:exits")
        assert deliveries_resume(now=later) == 1
    assert len(queued) == 1


def test_a_resend_gives_a_dead_letter_fresh_attempts_and_the_same_key(receiver, queued,
                                                                      django_capture_on_commit_callbacks):  # fmt: skip
    server = receiver()
    delivery = make_delivery(server.url, django_capture_on_commit_callbacks)
    Delivery.objects.filter(pk=delivery.pk).update(status="dead", attempts=3, last_error="HTTP 503")
    [sending] = create(make_output(name="mes"), django_capture_on_commit_callbacks)
    services._claim(sending.pk, timezone.now())
    queued.clear()
    with django_capture_on_commit_callbacks(execute=True):
        assert deliveries_resend(delivery_ids=[delivery.pk, sending.pk]) == 1
    assert queued == [(delivery.pk, 0.0)]
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == ("pending", 0)
    assert delivery_send(delivery_id=delivery.pk) == "delivered"
    assert server.requests[0]["key"] == delivery.idempotency_key
    assert Delivery.objects.get(pk=sending.pk).status == "sending"  # left alone


def test_a_request_that_cannot_even_be_made_is_a_failed_attempt_not_a_stuck_delivery(
    receiver, queued, django_capture_on_commit_callbacks
):
    server = receiver()
    delivery = make_delivery(server.url, django_capture_on_commit_callbacks, headers={"X-Line": "线 A"})  # not Latin-1
    assert delivery_send(delivery_id=delivery.pk) == Delivery.Status.RETRYING
    delivery.refresh_from_db()
    assert delivery.status == "retrying" and delivery.last_error.startswith("could not send: UnicodeEncodeError")
