"""Writes of the delivery app: make an output's deliveries, send one attempt, resume lost ones, re-send.

How a delivery moves: pending -> sending (claimed by one worker, leased) -> delivered, or -> retrying (after a
backoff) -> sending ... -> dead once EDGE_DELIVERY_MAX_ATTEMPTS attempts failed. Every attempt carries the same
Idempotency-Key, so a receiver that remembers keys acts on it once, however often it arrives: at least once
while the receiver eventually answers 2xx, at most once as that receiver sees it.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Model
from django.utils import timezone

from edgeportal.core import metrics
from edgeportal.delivery import selectors, sending
from edgeportal.delivery.addresses import url_refusal
from edgeportal.delivery.backoff import retry_delay_s
from edgeportal.delivery.models import Delivery, Destination
from edgeportal.delivery.payloads import delivery_body, idempotency_key
from edgeportal.delivery.queues import exits_backlog, queue_deliveries

log = logging.getLogger(__name__)

LEASE_LOST = "the worker sending it stopped before an answer came (its lease ran out)"
MAX_ERROR_CHARS = 2000

# What delivery_send returns: the delivery's status after the attempt, or one of these.
NOT_DUE = "not_due"  # delivered, dead, being sent, or not due yet: another task or the sweep has it
STALE = "stale"  # the attempt failed, but meanwhile the sweep or an admin had moved the delivery on


@transaction.atomic
def deliveries_create(*, output: Model) -> list[Delivery]:
    """One delivery per active destination that takes this output (a JobOutput), if it is deliverable;
    their sending is queued once the caller's transaction commits. Idempotent: a second call for the same
    output makes nothing new and queues nothing."""
    if not output.deliverable:
        return []
    job = output.job
    destinations = selectors.destinations_for(
        output_name=output.name, template_id=job.template_id, source_id=job.source_id
    )
    now = timezone.now()
    deliveries, made = [], []
    for destination in destinations:
        key = idempotency_key(
            job_id=job.pk, job_created_at=job.created_at, output_name=output.name, destination_id=destination.pk
        )
        delivery, created = Delivery.objects.get_or_create(
            output=output,
            destination=destination,
            defaults={
                "idempotency_key": key,
                "body": delivery_body(output=output, key=key),
                "next_attempt_at": now,
                "queued_at": now,
            },
        )
        deliveries.append(delivery)
        if created:
            made.append(delivery.pk)
    _queue_on_commit(made)
    return deliveries


def delivery_send(*, delivery_id: int) -> str:
    """One attempt, as the deliver task runs it: claim the delivery (only one worker can), POST it with no
    transaction open, record what came back. Returns the delivery's status afterwards, NOT_DUE or STALE."""
    delivery = _claim(delivery_id, timezone.now())
    if delivery is None:
        return NOT_DUE
    destination = delivery.destination
    refusal = _refusal(destination)
    if refusal:
        return _record_failure(delivery, error=refusal, response_code=None, give_up=True)
    body = delivery.body.encode()
    headers = sending.request_headers(
        body=body,
        secret=destination.secret,
        idempotency_key=delivery.idempotency_key,
        attempt=delivery.attempts,
        extra=destination.headers,
    )
    try:
        answer = sending.post(destination.url, body=body, headers=headers, timeout_s=destination.timeout_s)
    except Exception as error:  # a header the admin form never let through, set from a shell: still an attempt
        log.exception("delivery %s could not be sent", delivery.idempotency_key)
        answer = sending.Answer(None, f"could not send: {type(error).__name__}: {error}")
    if answer.delivered:
        return _record_delivered(delivery, response_code=answer.status)
    return _record_failure(delivery, error=answer.error, response_code=answer.status)


def deliveries_resume(*, now: datetime | None = None) -> int:
    """The sweep: a delivery whose worker died mid-request (its lease ran out) is tried again, or dead-lettered
    if that was its last attempt; a waiting delivery whose task was lost (due EDGE_DELIVERY_GRACE_S ago, and the
    exits queue empty: every message taken) is queued again. Returns how many were queued. A double of a task
    that was merely late is harmless: only one of them claims the delivery."""
    now = now or timezone.now()
    queued = []
    for pk, attempts in selectors.deliveries_lease_ran_out(now=now):
        dead = attempts >= settings.EDGE_DELIVERY_MAX_ATTEMPTS
        updated = Delivery.objects.filter(pk=pk, status=Delivery.Status.SENDING, attempts=attempts).update(
            status=Delivery.Status.DEAD if dead else Delivery.Status.RETRYING,
            next_attempt_at=now,
            queued_at=now,
            lease_until=None,
            last_error=LEASE_LOST,
            response_code=None,
            updated_at=now,
        )
        if not updated:
            continue
        metrics.delivery_attempted("failed")  # the lost attempt, which its worker never recorded
        if dead:
            metrics.delivery_dead()
            log.warning("delivery %s is dead after %d attempts: %s", pk, attempts, LEASE_LOST)
        else:
            queued.append(pk)
    # With messages still in the queue, late tasks are waiting for a free worker, not lost: queueing doubles then
    # would pile up copies for as long as the exits worker is down or busy.
    if exits_backlog() == 0:
        lost = selectors.deliveries_task_lost(cutoff=now - timedelta(seconds=settings.EDGE_DELIVERY_GRACE_S))
        Delivery.objects.filter(pk__in=lost).update(queued_at=now)
        queued += lost
    _queue_on_commit(queued)
    return len(queued)


@transaction.atomic
def deliveries_resend(*, delivery_ids: list[int]) -> int:
    """Send these deliveries again (an admin's action), with a fresh budget of attempts and the same
    Idempotency-Key: a receiver that already acted on one answers 2xx without acting twice. One being sent
    right now is left alone. Returns how many will be sent."""
    now = timezone.now()
    rows = Delivery.objects.filter(pk__in=delivery_ids).exclude(status=Delivery.Status.SENDING)
    ids = list(rows.values_list("pk", flat=True))
    count = rows.update(
        status=Delivery.Status.PENDING,
        attempts=0,
        next_attempt_at=now,
        queued_at=now,
        lease_until=None,
        delivered_at=None,
        updated_at=now,
    )
    _queue_on_commit(ids)
    return count


def _claim(delivery_id: int, now: datetime) -> Delivery | None:
    """Take a waiting, due delivery for one attempt: one conditional UPDATE, so of two workers (a task and its
    double from the sweep) exactly one wins. Its lease lasts the destination's timeout plus the grace."""
    delivery = Delivery.objects.select_related("destination").filter(pk=delivery_id).first()
    if delivery is None or delivery.status not in Delivery.WAITING or delivery.next_attempt_at > now:
        return None
    lease_until = now + timedelta(seconds=delivery.destination.timeout_s + settings.EDGE_DELIVERY_GRACE_S)
    claimed = Delivery.objects.filter(
        pk=delivery_id, status__in=Delivery.WAITING, attempts=delivery.attempts, next_attempt_at__lte=now
    ).update(status=Delivery.Status.SENDING, attempts=delivery.attempts + 1, lease_until=lease_until, updated_at=now)
    if not claimed:
        return None
    delivery.status = Delivery.Status.SENDING
    delivery.attempts += 1
    delivery.lease_until = lease_until
    return delivery


def _refusal(destination: Destination) -> str:
    """Why nothing may be sent to this destination now (settings or the destination changed since)."""
    if not destination.is_active:
        return "the destination is not active"
    refused = url_refusal(
        destination.url, schemes=settings.EDGE_DELIVERY_ALLOWED_SCHEMES, hosts=settings.EDGE_DELIVERY_ALLOWED_HOSTS
    )
    return f"URL refused: {refused.message}" if refused else ""


def _record_delivered(delivery: Delivery, *, response_code: int) -> str:
    """A 2xx is the truth, whoever holds the delivery now: even a late answer to an attempt the sweep gave up
    on marks it delivered (the receiver has it)."""
    now = timezone.now()
    Delivery.objects.filter(pk=delivery.pk).exclude(status=Delivery.Status.DELIVERED).update(
        status=Delivery.Status.DELIVERED,
        delivered_at=now,
        response_code=response_code,
        last_error="",
        lease_until=None,
        updated_at=now,
    )
    metrics.delivery_attempted("delivered")
    log.info("delivery %s delivered (attempt %d, HTTP %d)", delivery.idempotency_key, delivery.attempts, response_code)
    return Delivery.Status.DELIVERED


def _record_failure(delivery: Delivery, *, error: str, response_code: int | None, give_up: bool = False) -> str:
    """Retry after a backoff, or dead-letter after the last attempt (or at once when give_up). Only while this
    attempt still holds the delivery: the sweep may have moved it on after its lease ran out."""
    now = timezone.now()
    attempt = delivery.attempts
    dead = give_up or attempt >= settings.EDGE_DELIVERY_MAX_ATTEMPTS
    fields = {"status": Delivery.Status.DEAD}
    delay_s = 0.0
    if not dead:
        delay_s = retry_delay_s(
            attempt,
            base_s=settings.EDGE_DELIVERY_BACKOFF_MS / 1000,
            max_s=settings.EDGE_DELIVERY_BACKOFF_MAX_MS / 1000,
        )
        next_attempt_at = now + timedelta(seconds=delay_s)
        fields = {"status": Delivery.Status.RETRYING, "next_attempt_at": next_attempt_at, "queued_at": next_attempt_at}
    updated = Delivery.objects.filter(pk=delivery.pk, status=Delivery.Status.SENDING, attempts=attempt).update(
        **fields, last_error=error[:MAX_ERROR_CHARS], response_code=response_code, lease_until=None, updated_at=now
    )
    metrics.delivery_attempted("failed")
    if not updated:
        return STALE
    if dead:
        metrics.delivery_dead()
        log.warning("delivery %s is dead after %d attempt(s): %s", delivery.idempotency_key, attempt, error)
        return Delivery.Status.DEAD
    log.info("delivery %s failed (attempt %d, %s); again in %.1f s", delivery.idempotency_key, attempt, error, delay_s)
    _queue_on_commit([delivery.pk], countdown_s=delay_s)
    return Delivery.Status.RETRYING


def _queue_on_commit(delivery_ids: list[int], *, countdown_s: float = 0.0) -> None:
    """A worker must never look for a delivery its writer has not committed (robust: a Redis hiccup is logged,
    and the sweep queues the delivery again)."""
    if delivery_ids:
        ids = list(delivery_ids)
        transaction.on_commit(lambda: queue_deliveries(ids, countdown_s=countdown_s), robust=True)
