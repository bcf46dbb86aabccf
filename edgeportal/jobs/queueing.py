"""The JobQueue and the scheduler settings the web side talks to, built from settings (one per Redis URL and prefix)."""

from functools import cache

from django.conf import settings

from inference.queue import JobQueue
from inference.scheduler import SchedulerSettings, SettingsStore


def get_queue() -> JobQueue:
    return _queue_for(settings.REDIS_URL, settings.EDGE_REDIS_PREFIX)


@cache
def _queue_for(url: str, prefix: str) -> JobQueue:
    return JobQueue.from_url(url, prefix)


def get_settings_store() -> SettingsStore:
    """Environment defaults (checked at start in settings.py) plus the live overrides in Redis."""
    return SettingsStore(get_queue(), settings.EDGE_SCHEDULER)


def scheduler_settings() -> SchedulerSettings:
    return get_settings_store().current()


def queue_owner(*, source_id: int | None, user_id: int | None) -> str:
    """The sender a job counts for in fair share (source_share_pct): its machine source, else the person who
    submitted it, each person a sender of their own; "" for neither (not counted)."""
    if source_id is not None:
        return f"source:{source_id}"
    return f"user:{user_id}" if user_id is not None else ""
