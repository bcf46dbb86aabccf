"""The store's parts the web side talks to (inference.store), built from settings: the queues of the pools, the
scheduler settings, jobs' events and the web side's keys (one Redis client per URL, one JobQueue per pool)."""

import asyncio
import weakref
from collections.abc import Iterable, Iterator, Mapping
from functools import cache

import redis
import redis.asyncio
from django.conf import settings

from inference.batch_time import model_prior
from inference.model_files import ModelConfigError, parameter_count
from inference.pools import ModelCatalog, Pool
from inference.settings import SchedulerSettings
from inference.store.job_events import JobEvents
from inference.store.queue import WORKER_ALIVE_S, JobQueue, SettingsStore, async_redis_client, redis_client
from inference.store.web import WebStore


def model_catalog() -> ModelCatalog:
    """The models this node serves (EDGE_MODEL and EDGE_MODELS, checked at start in settings.py)."""
    return _catalog_for(settings.EDGE_MODEL, settings.EDGE_MODELS)


@cache
def _catalog_for(model: str, models: str) -> ModelCatalog:
    return ModelCatalog.from_env(model, models)


def get_queue(pool: Pool | None = None) -> JobQueue:
    """A pool's queue; without one, the default model's CPU pool. (queue.base: the prefix of what all pools
    share.)"""
    pool = pool or model_catalog().default_pool()
    return _queue_for(settings.REDIS_URL, settings.EDGE_REDIS_PREFIX, pool.name)


def pool_of(name: str) -> Pool:
    """A pool by the name a job stored (an empty one: a job queued before pools, in the default pool)."""
    return Pool.from_name(name) if name else model_catalog().default_pool()


def pools_known() -> list[Pool]:
    """Every pool that may hold jobs: each model's CPU pool, every pool a job was queued in (by any process,
    whichever models it knows of), and every pool a worker has served."""
    found = {Pool(name, "cpu") for name in model_catalog().names} | set(_pools_named(get_queue().pools_used()))
    default = model_catalog().default_pool()
    return sorted(found, key=lambda pool: (pool != default, pool))


def pools_for(model: str, seen_at: Mapping[str, float] | None = None) -> list[Pool]:
    """The pools a new job of this model may go to: those with a live worker, else the one served last,
    else the model's CPU pool (its jobs wait there for a worker, or expire). seen_at: the registry of pools
    (JobQueue.pools_seen), where the caller has read it already."""
    queue = get_queue()
    now = queue.now()
    seen_at = queue.pools_seen() if seen_at is None else seen_at
    seen = [(seen_at[pool.name], pool) for pool in _pools_named(seen_at) if pool.model == model]
    live = sorted(pool for at, pool in seen if now - at <= WORKER_ALIVE_S)
    if live:
        return live
    return [max(seen)[1]] if seen else [Pool(model, "cpu")]


def _pools_named(names: Iterable[str]) -> Iterator[Pool]:
    """The pools of these names, skipping any that is not a pool's (not ours to read)."""
    for name in names:
        try:
            yield Pool.from_name(name)
        except ValueError:
            continue


@cache
def _redis_for(url: str) -> redis.Redis:
    return redis_client(url)


_async_clients: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def async_redis() -> redis.asyncio.Redis:
    """The Redis client of this event loop, for views that wait on Redis without holding a thread (the
    OpenAI-compatible API, the pages' job streams). Each waiting request holds one of its connections."""
    loop = asyncio.get_running_loop()
    client = _async_clients.get(loop)
    if client is None:
        client = _async_clients[loop] = async_redis_client(settings.REDIS_URL)
    return client


@cache
def _queue_for(url: str, base: str, pool: str) -> JobQueue:
    return JobQueue(_redis_for(url), Pool.from_name(pool).prefix(base), base=base, pool=pool)


def job_events() -> JobEvents:
    """Jobs' streamed text and ends (one stream per job, whichever pool runs it)."""
    return JobEvents(get_queue().redis, settings.EDGE_REDIS_PREFIX)


def web_store() -> WebStore:
    """The web side's keys (caches, rate limits, refusal counts, trend, exits queue), through get_queue()'s
    client; built on each call, so the prefix is the one settings hold now (each test its own)."""
    return WebStore(get_queue().redis, settings.EDGE_REDIS_PREFIX)


def get_settings_store() -> SettingsStore:
    """Environment defaults (checked at start in settings.py) plus the live overrides in Redis."""
    return SettingsStore(get_queue(), settings.EDGE_SCHEDULER)


def scheduler_settings() -> SchedulerSettings:
    return get_settings_store().current()


def scheduler_settings_and_pools() -> tuple[SchedulerSettings, dict[str, float], str]:
    """The settings, the registry of pools (for pools_for) and the version of the rows web processes keep
    (core.lookups), in one round trip."""
    scheduler, pools, lookups_version = get_settings_store().current_and_pools(also=web_store().lookups_key)
    return scheduler, pools, lookups_version or ""


def batch_time_prior(model: str | None = None) -> dict[str, str]:
    """What admission plans a model's batch at before any worker measured one (batch_time.model_prior)."""
    catalog = model_catalog()
    spec = catalog.spec_of(model or catalog.default)
    return _prior_for(spec, settings.EDGE_DEFAULT_MAX_NEW_TOKENS, settings.EDGE_SCHEDULER.max_batch_size)


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
