"""The Celery queue deliveries travel on, f"{EDGE_REDIS_PREFIX}:exits" (inference.store.web),
consumed by the exits worker only."""

from __future__ import annotations

import logging

import redis

from edgeportal.core.queueing import web_store

log = logging.getLogger(__name__)

TASK_PREFIX = "edgeportal.delivery."
DELIVER_TASK = "edgeportal.delivery.tasks.deliver"


def exits_queue() -> str:
    """The exits queue's name; read when a task is sent or a worker starts, so a test's prefix counts."""
    return web_store().exits_queue()


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
    """Messages waiting in the exits queue, taken by no worker yet (read from Redis itself); None when Redis
    does not answer."""
    try:
        return web_store().exits_queue_length()
    except redis.RedisError:
        return None
