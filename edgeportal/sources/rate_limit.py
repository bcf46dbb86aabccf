"""Per-source rate limit: a fixed one-minute window counted in Redis (the count: the store, inference.store)."""

import time

from django.conf import settings

from edgeportal.core.queueing import web_store
from edgeportal.sources.models import Source


def rate_limit_hit(*, source: Source, now: float | None = None) -> int | None:
    """Count this request; if the source is over its limit, return the seconds until it may send again."""
    limit = source.rate_limit_per_minute
    if limit is None:
        limit = settings.EDGE_RATE_LIMIT_PER_MINUTE
    if limit == 0:
        return None
    now = time.time() if now is None else now
    count = web_store().rate_hit(source.pk, int(now // 60))
    if count <= limit:
        return None
    return max(1, 60 - int(now % 60))
