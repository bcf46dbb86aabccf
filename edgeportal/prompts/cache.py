"""The prompt cache in Redis: answers repeats without the model, and lets identical requests share one run."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass

from django.conf import settings

from edgeportal.jobs.queueing import get_queue

FLIGHT_TTL_S = 600  # a leader that never reports back releases its followers' key after this long


@dataclass(frozen=True)
class CachedResult:
    output: str
    prompt_tokens: int
    output_tokens: int
    job_id: int


def cache_key(*, prompt: str, system_prompt: str, max_new_tokens: int, template_version: int | None) -> str:
    identity = [prompt, system_prompt, max_new_tokens, settings.EDGE_MODEL_IDENTITY, template_version]
    return hashlib.sha256(json.dumps(identity, ensure_ascii=False).encode()).hexdigest()


def _key(kind: str, key: str) -> str:
    return f"{settings.EDGE_REDIS_PREFIX}:cache:{kind}:{key}"


def cache_get(key: str) -> CachedResult | None:
    raw = get_queue().redis.get(_key("result", key))
    return CachedResult(**json.loads(raw)) if raw else None


def cache_put(key: str, result: CachedResult) -> None:
    get_queue().redis.set(_key("result", key), json.dumps(asdict(result)), ex=settings.EDGE_CACHE_TTL_S)


def flight_claim(key: str, job_id: int) -> int | None:
    """Become the one job that runs this prompt; returns the leader's id if another job already does."""
    redis = get_queue().redis
    if redis.set(_key("flight", key), job_id, nx=True, ex=FLIGHT_TTL_S):
        return None
    leader = redis.get(_key("flight", key))
    return int(leader) if leader else None


def flight_release(key: str) -> None:
    get_queue().redis.delete(_key("flight", key))


def cache_clear() -> int:
    redis = get_queue().redis
    keys = list(redis.scan_iter(f"{settings.EDGE_REDIS_PREFIX}:cache:result:*", count=1000))
    return redis.delete(*keys) if keys else 0
