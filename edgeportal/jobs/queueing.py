"""The one JobQueue the web side talks to, built from settings."""

from functools import cache

from django.conf import settings

from inference.queue import JobQueue


@cache
def get_queue() -> JobQueue:
    return JobQueue.from_url(settings.REDIS_URL, settings.EDGE_REDIS_PREFIX)
