"""The prompt cache in Redis: answers repeats without the model, and lets identical requests share one run."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from functools import cache

from django.conf import settings

from edgeportal.jobs.queueing import get_queue, scheduler_settings
from inference.model_files import ModelConfigError, resolve_model_path

FLIGHT_TTL_S = 600  # a leader that never reports back releases its followers' key after this long


@dataclass(frozen=True)
class CachedResult:
    output: str
    prompt_tokens: int
    output_tokens: int
    job_id: int


@cache
def model_identity(spec: str, dtype: str) -> str:
    """Which weights answer: the model file's name, size and date, and the dtype. A new model (or a new
    release of the default one) never answers from the old one's cache."""
    try:
        path = resolve_model_path(spec or None)
    except ModelConfigError:
        return f"{spec}:{dtype}"
    stat = (path / "config.json" if path.is_dir() else path).stat()
    return f"{path.name}:{stat.st_size}:{int(stat.st_mtime)}:{dtype}"


def cache_key(*, prompt: str, system_prompt: str, max_new_tokens: int, template_version: int | None) -> str:
    identity = [
        prompt, system_prompt, max_new_tokens, model_identity(settings.EDGE_MODEL, settings.EDGE_DTYPE),
        template_version,
    ]  # fmt: skip
    return hashlib.sha256(json.dumps(identity, ensure_ascii=False).encode()).hexdigest()


def _key(kind: str, key: str) -> str:
    return f"{settings.EDGE_REDIS_PREFIX}:cache:{kind}:{key}"


def cache_get(key: str) -> CachedResult | None:
    raw = get_queue().redis.get(_key("result", key))
    return CachedResult(**json.loads(raw)) if raw else None


def cache_put(key: str, result: CachedResult) -> None:
    ttl_s = scheduler_settings().cache_ttl_s  # tuned live by admins; 0 stores nothing
    if ttl_s:
        get_queue().redis.set(_key("result", key), json.dumps(asdict(result)), ex=ttl_s)


# Delete the flight key only if this job still holds it: a late release must not free another leader's prompt.
RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end"


def flight_claim(key: str, job_id: int) -> int | None:
    """Become the one job that runs this prompt (atomically); returns the leader's id if another job leads."""
    leader = get_queue().redis.set(_key("flight", key), job_id, nx=True, get=True, ex=FLIGHT_TTL_S)
    return int(leader) if leader else None


def flight_take_over(key: str, job_id: int) -> None:
    """The named leader is gone (never committed, or finished without releasing): lead instead."""
    get_queue().redis.set(_key("flight", key), job_id, ex=FLIGHT_TTL_S)


def flight_release(key: str, job_id: int) -> None:
    get_queue().redis.eval(RELEASE, 1, _key("flight", key), str(job_id))


def cache_clear() -> int:
    redis = get_queue().redis
    keys = list(redis.scan_iter(f"{settings.EDGE_REDIS_PREFIX}:cache:result:*", count=1000))
    return redis.delete(*keys) if keys else 0
