"""Refusals of the entry: counted in Redis as they happen (no database write on the request), then stored
in the database per minute, source, user, template and rule, with a count and one sample message.

The counts live in Redis per minute (on Redis' clock, so hosts agree on them), under keys that
the store owns and lists (inference.store). A group is the JSON list [source id, user id, rule, template slug].
"""

from __future__ import annotations

import json
import math
from collections import Counter
from datetime import UTC, datetime

import redis
from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import Sum
from django.utils.translation import gettext_lazy as _

from edgeportal.core.queueing import web_store
from edgeportal.echo import clipped
from edgeportal.jobs.models import Rejection
from edgeportal.sources.models import Source

# The entry's refusal codes as the pages name them (machines read the codes: API, metrics, CSV).
RULE_LABELS = {
    "queue_full": _("queue full"),
    "deadline_unreachable": _("deadline unreachable"),
    "long_jobs_due": _("long jobs due first"),
    "long_lane_share": _("long lane over its share"),
    "source_share": _("sender over its share"),
    "rate_limited": _("over the rate limit"),
    "blocked_pattern": _("blocked phrase"),
    "too_long": _("too long"),
    "too_many_tokens": _("too many tokens"),
    "encoding": _("broken text"),
    "control_characters": _("control characters"),
    "empty_prompt": _("empty prompt"),
    "invalid": _("invalid request"),
    "invalid_variables": _("invalid variables"),
    "missing": _("nothing to run"),
    "forbidden": _("not allowed"),
    "template_not_allowed": _("template not allowed"),
    "unknown_template": _("unknown template"),
    "unknown_model": _("unknown model"),
}


def rule_label(rule: str) -> str:
    """A refusal code as a page shows it; a code without a label (added later) as itself."""
    return str(RULE_LABELS.get(rule, rule))


SAMPLE_CHARS = 300
# Counts wait in Redis until beat stores them (every minute); kept this long if it does not run.
KEEP_S = 2 * 86_400


def refusal_count(*, rule: str, message: str, source: Source | None = None, user=None, template_slug: str = "") -> None:
    """Count one refusal in the current minute (one Redis round trip). The template slug is a known template's
    (callers never pass what a request merely named), so the groups stay few whatever requests send."""
    group = json.dumps([source.pk if source else None, user.pk if user else None, rule, template_slug])
    sample = clipped(_storable(message), SAMPLE_CHARS)
    web_store().refusal_count_add(group, sample, KEEP_S)


def _storable(text: str) -> str:
    """Refused input is echoed in messages: keep it storable (no NUL, no unpaired surrogates)."""
    return text.encode("utf-8", "replace").decode("utf-8").replace("\x00", "")


def _minute_start(minute: int) -> datetime:
    return datetime.fromtimestamp(minute * 60, tz=UTC)


def refusals_flush(*, now_s: float | None = None) -> int:
    """Store the counts of every closed minute (before the one of `now_s`, by default Redis' clock's) as
    Rejection rows; returns how many rows it wrote.

    A row's count is set, not added to, so a flush interrupted between the database and Redis, then
    repeated, stores the same numbers again."""
    store = web_store()
    if not store.refusal_flush_start():
        return 0  # another flush runs (two would both create the same rows)
    try:
        now_s = store.redis_now_s() if now_s is None else now_s
        stored = 0
        for minute in store.refusal_minutes(high=int(now_s // 60) - 1):
            counts, samples = store.refusal_minute(minute)
            stored += _store_minute(minute, counts, samples)
            store.refusal_minute_forget(minute)
        return stored
    finally:
        store.refusal_flush_end()


@transaction.atomic
def _store_minute(minute: int, counts: dict[str, str], samples: dict[str, str]) -> int:
    groups = [(json.loads(group), int(count), samples.get(group, "")) for group, count in counts.items()]
    # A source or user deleted since keeps its refusals, without the link (as SET_NULL would have left them).
    sources = set(Source.objects.filter(pk__in={g[0] for g, _, _ in groups}).values_list("pk", flat=True))
    users = set(get_user_model().objects.filter(pk__in={g[1] for g, _, _ in groups}).values_list("pk", flat=True))
    merged: dict[tuple, list] = {}
    for (source_id, user_id, rule, slug), count, sample in groups:
        key = (source_id if source_id in sources else None, user_id if user_id in users else None, rule, slug)
        merged.setdefault(key, [0, sample])[0] += count
    for (source_id, user_id, rule, slug), (count, sample) in merged.items():
        Rejection.objects.update_or_create(
            source_id=source_id, user_id=user_id, rule=rule, template_slug=slug, created_at=_minute_start(minute),
            defaults={"count": count, "message": sample},
        )  # fmt: skip
    return len(merged)


def refusals_by_rule(*, since: datetime) -> Counter[str]:
    """Refusals per rule in the minutes that start at or after `since`: stored rows, plus the minutes still in
    Redis (each minute read from one place only). Without Redis, the stored rows alone."""
    first_minute = math.ceil(since.timestamp() / 60)
    totals: Counter[str] = Counter()
    in_redis: list[int] = []
    try:
        store = web_store()
        in_redis = store.refusal_minutes(low=first_minute)
        for counts in store.refusal_counts(in_redis):
            for group, count in counts.items():
                totals[json.loads(group)[2]] += int(count)
    except redis.RedisError:
        in_redis, totals = [], Counter()
    stored = Rejection.objects.filter(created_at__gte=_minute_start(first_minute)).exclude(
        created_at__in=[_minute_start(minute) for minute in in_redis]
    )
    for row in stored.values("rule").annotate(total=Sum("count")).order_by():
        totals[row["rule"]] += row["total"]
    return totals
