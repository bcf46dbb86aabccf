"""The Celery queue deliveries travel on, f"{EDGE_REDIS_PREFIX}:exits", consumed by the exits worker only."""

from __future__ import annotations

import logging

import redis
from django.conf import settings

from inference.queue import redis_client

log = logging.getLogger(__name__)

TASK_PREFIX = "edgeportal.delivery."
DELIVER_TASK = "edgeportal.delivery.tasks.deliver"


def exits_queue() -> str:
    return f"{settings.EDGE_REDIS_PREFIX}:exits"


def route_task(name, args, kwargs, options, task=None, **kw):
    """CELERY_TASK_ROUTES' router: the delivery app's tasks go to the exits queue, the rest where they went.
    A router rather than a fixed route, so the prefix is read when a task is sent (tests change it)."""
    if name.startswith(TASK_PREFIX):
        return {"queue": exits_queue()}
    return None


def queue_deliveries(delivery_ids: list[int], *, countdown_s: float = 0.0) -> None:
    """Queue one deliver task per delivery (by name: the tasks module imports the services that call this).
    With Redis unreachable, the rest are not tried: the sweep queues them again."""
    from celery import current_app

    for pk in delivery_ids:
        try:
            current_app.send_task(DELIVER_TASK, args=[pk], countdown=countdown_s or None)
        except Exception as error:
            log.warning("could not queue deliveries %s (%s); the sweep queues them again", delivery_ids, error)
            return


def exits_backlog() -> int | None:
    """Messages waiting in the exits queue, taken by no worker yet; None when Redis does not answer.

    Read from Redis itself: Celery's Redis transport keeps a queue's messages in a list named after it.
    """
    try:
        return redis_client(settings.REDIS_URL).llen(exits_queue())
    except redis.RedisError:
        return None
