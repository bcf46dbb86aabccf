"""Deliveries with real parts: a receiver process, exits worker processes (Celery, threads), Redis, beat, and
a model worker beside them. The receiver acts on each Idempotency-Key once, as a real idempotent one does."""

import time

import pytest

from edgeportal.delivery.models import Delivery, Destination
from edgeportal.delivery.services import deliveries_create, deliveries_resume
from edgeportal.jobs.models import Job
from tests.delivery.conftest import SECRET, make_output
from tests.integration.workers import wait_until

pytestmark = pytest.mark.integration

# The exits worker reads its settings from the environment: plain http to this machine, short waits.
WORKER_ENV = {
    "EDGE_DELIVERY_ALLOWED_SCHEMES": "http",
    "EDGE_DELIVERY_ALLOWED_HOSTS": "127.0.0.1:*",
    "EDGE_DELIVERY_BACKOFF_MS": "200",
    "EDGE_DELIVERY_BACKOFF_MAX_MS": "1000",
    "EDGE_DELIVERY_MAX_ATTEMPTS": "6",
    "EDGE_DELIVERY_GRACE_S": "1",
}


@pytest.fixture(autouse=True)
def local_receivers(settings):
    settings.EDGE_DELIVERY_ALLOWED_SCHEMES = ["http"]
    settings.EDGE_DELIVERY_ALLOWED_HOSTS = ["127.0.0.1:*"]


def destination_for(receiver, **fields) -> Destination:
    return Destination.objects.create(name="mes-gateway", url=receiver.url, secret=SECRET, **fields)


def status_of(delivery: Delivery, *statuses: str):
    return lambda: Delivery.objects.get(pk=delivery.pk).status in statuses


def effective(requests: list[dict], key: str) -> int:
    """How many times the receiver acted on the key: what "delivered once" means to it."""
    return sum(1 for request in requests if request["key"] == key and request.get("effect") == "acted")


def test_a_receiver_failing_three_times_gets_the_output_once_on_the_fourth_attempt(start_receiver, start_exits_worker):
    receiver = start_receiver(secret=SECRET, fail_first=3)
    destination_for(receiver)
    worker = start_exits_worker(**WORKER_ENV)
    [delivery] = deliveries_create(output=make_output())  # queued at once: no transaction is open here
    try:
        wait_until(status_of(delivery, "delivered", "dead"), timeout=30, what="the delivery")
    except TimeoutError:
        raise AssertionError(worker.log()) from None
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.response_code, delivery.last_error) == (
        "delivered",
        4,
        200,
        "",
    )
    requests = receiver.requests()
    assert [r["answer"] for r in requests] == [503, 503, 503, 200]
    assert [r["attempt"] for r in requests] == ["1", "2", "3", "4"]
    assert {r["key"] for r in requests} == {delivery.idempotency_key}
    assert all(r["signature_ok"] for r in requests)
    assert effective(requests, delivery.idempotency_key) == 1
    assert requests[-1]["body"]["output"] == "ticket" and requests[-1]["body"]["text"] == "A 线卡料，请检查。"
    assert "loaded and warmed up" not in worker.log()  # no model, no batch loop in the exits worker


def test_a_receiver_that_never_answers_gets_a_bounded_number_of_attempts_and_never_holds_up_the_batch_loop(
    start_receiver, start_exits_worker, start_worker, api
):
    start_worker(EDGE_WINDOW_MS="20")  # the model worker, beside the exits worker
    receiver = start_receiver(secret=SECRET, mode="hang", hang_s=60)
    destination_for(receiver, timeout_s=2)
    start_exits_worker(**{**WORKER_ENV, "EDGE_DELIVERY_MAX_ATTEMPTS": "3"})
    # More deliveries than the exits worker has threads: every thread waits on the silent receiver.
    deliveries = [deliveries_create(output=make_output())[0] for _ in range(6)]
    wait_until(lambda: len(receiver.requests()) >= 4, timeout=20, what="the receiver to hold four requests")
    job_id = api.post({"prompt": "Line A restarts in ten minutes.", "deadline_ms": 60_000}).json()["id"]
    wait_until(lambda: Job.objects.get(pk=job_id).is_finished, timeout=30, what="the job")
    job_done_at = time.monotonic()
    wait_until(lambda: Delivery.objects.filter(status="dead").count() == 6, timeout=90, what="the dead letters")
    all_dead_at = time.monotonic()
    assert Job.objects.get(pk=job_id).status == Job.Status.DONE
    assert all_dead_at - job_done_at > 2  # the job did not wait for the deliveries (each attempt holds 2 s)
    requests = receiver.requests()
    for delivery in deliveries:
        delivery.refresh_from_db()
        assert (delivery.status, delivery.attempts, delivery.response_code) == ("dead", 3, None)
        assert delivery.last_error.endswith("answer within 2 s")
        assert sum(1 for r in requests if r["key"] == delivery.idempotency_key) == 3


def test_an_exits_worker_killed_mid_delivery_is_replaced_and_the_receiver_acts_on_the_output_once(
    start_receiver, start_exits_worker, start_beat
):
    receiver = start_receiver(secret=SECRET, mode="hold-first", hang_s=120)
    destination_for(receiver, timeout_s=3)
    first = start_exits_worker("exits1", **WORKER_ENV)
    [delivery] = deliveries_create(output=make_output())
    # The receiver has acted on it and holds the answer back; the worker waits for that answer ...
    wait_until(lambda: receiver.requests(), timeout=20, what="the first request")
    assert Delivery.objects.get(pk=delivery.pk).status == "sending"
    first.kill()  # ... and dies: kill -9, mid-request, its message unacknowledged
    started = time.monotonic()
    start_exits_worker("exits2", **WORKER_ENV)
    start_beat(EDGE_DELIVERY_SWEEP_EVERY_S="1", **WORKER_ENV)  # the sweep finds the lease run out (3 s + 1 s)
    wait_until(status_of(delivery, "delivered", "dead"), timeout=40, what="the delivery to be resumed")
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.response_code) == ("delivered", 2, 200)
    assert time.monotonic() - started >= 3  # not before the dead worker's lease ran out
    requests = receiver.requests()
    assert [(r["attempt"], r["answer"], r["effect"]) for r in requests] == [
        ("1", None, "acted"),
        ("2", 200, "duplicate"),
    ]
    assert {r["key"] for r in requests} == {delivery.idempotency_key}
    assert effective(requests, delivery.idempotency_key) == 1
    assert deliveries_resume() == 0  # nothing left to resume
