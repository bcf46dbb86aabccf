"""The JobQueue the web side talks to, built from settings (one per Redis URL and key prefix)."""

from functools import cache

from django.conf import settings

from inference.queue import JobQueue


def get_queue() -> JobQueue:
    return _queue_for(settings.REDIS_URL, settings.EDGE_REDIS_PREFIX)


@cache
def _queue_for(url: str, prefix: str) -> JobQueue:
    return JobQueue.from_url(url, prefix)
