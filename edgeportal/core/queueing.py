"""The JobQueue and the scheduler settings the web side talks to, built from settings (one per Redis URL and prefix)."""

from functools import cache

from django.conf import settings

from inference.batch_time import model_prior
from inference.model_files import ModelConfigError, parameter_count
from inference.queue import JobQueue
from inference.scheduler import SettingsStore
from inference.settings import SchedulerSettings


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


def batch_time_prior() -> dict[str, str]:
    """What admission plans a batch at before any worker measured one (inference.batch_time.model_prior)."""
    return _prior_for(settings.EDGE_MODEL, settings.EDGE_DEFAULT_MAX_NEW_TOKENS, settings.EDGE_SCHEDULER.max_batch_size)


@cache
def _prior_for(model: str, new_tokens: int, batch_size: int) -> dict[str, str]:
    try:
        parameters = parameter_count(model or None)
    except (ModelConfigError, OSError, ValueError, KeyError, TypeError):
        parameters = 1_000_000_000  # a model we cannot find: plan as for a big one, until a worker measures
    return model_prior(parameters, new_tokens=new_tokens, batch_size=batch_size)


def queue_owner(*, source_id: int | None, user_id: int | None) -> str:
    """The sender a job counts for in fair share (source_share_pct): its machine source, else the person who
    submitted it, each person a sender of their own; "" for neither (not counted)."""
    if source_id is not None:
        return f"source:{source_id}"
    return f"user:{user_id}" if user_id is not None else ""
