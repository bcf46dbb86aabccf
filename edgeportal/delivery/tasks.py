"""Celery tasks of the delivery app, on the exits queue (edgeportal.delivery.queues): thin shells."""

from celery import shared_task

from edgeportal.delivery.services import deliveries_resume, delivery_send


# acks_late: a worker killed mid-request leaves the message unacknowledged; the sweep sends the delivery again
# (with the same Idempotency-Key) as soon as its lease runs out, long before Redis would hand the message back.
@shared_task(acks_late=True)
def deliver(delivery_id: int) -> str:
    return delivery_send(delivery_id=delivery_id)


@shared_task
def resume_deliveries() -> int:
    return deliveries_resume()
