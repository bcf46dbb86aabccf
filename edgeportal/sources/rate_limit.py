"""Per-source rate limit: a fixed one-minute window counted in Redis."""

import time

from django.conf import settings

from edgeportal.core.queueing import get_queue
from edgeportal.sources.models import Source


def rate_limit_hit(*, source: Source, now: float | None = None) -> int | None:
    """Count this request; if the source is over its limit, return the seconds until it may send again."""
    limit = source.rate_limit_per_minute
    if limit is None:
        limit = settings.EDGE_RATE_LIMIT_PER_MINUTE
    if limit == 0:
        return None
    now = time.time() if now is None else now
    minute = int(now // 60)
    key = f"{settings.EDGE_REDIS_PREFIX}:rate:{source.pk}:{minute}"
    pipe = get_queue().redis.pipeline()
    pipe.incr(key)
    pipe.expire(key, 120)
    count, _ = pipe.execute()
    if count <= limit:
        return None
    return max(1, 60 - int(now % 60))
