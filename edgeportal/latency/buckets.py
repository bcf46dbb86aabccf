"""Latency stages, the fixed latency buckets, and the two percentile definitions (exact rank and from buckets)."""

from __future__ import annotations

from bisect import bisect_right

from django.utils.translation import gettext_lazy as _

# The four stages of a job's latency: name used in forms, charts and LatencyHour -> JobLatency column.
STAGES = {
    "queue_wait": "queue_wait_ms",
    "window_wait": "window_wait_ms",
    "inference": "inference_ms",
    "total": "total_ms",
}
STAGE_LABELS = {
    "queue_wait": _("Queue wait"), "window_wait": _("Window wait"), "inference": _("Inference"), "total": _("Total"),
}  # fmt: skip
PERCENTILES = (50, 95, 99)

# Upper bounds (exclusive) of the buckets in ms, 1-2-5 steps; one more bucket holds everything from the last bound.
# Hourly aggregates store bucket indexes: never change or reorder these bounds, or old hours read wrongly.
BOUNDS_MS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000, 50000, 100000)
BUCKET_COUNT = len(BOUNDS_MS) + 1


def bucket_of(ms: float) -> int:
    """The index of the bucket that holds a latency."""
    return bisect_right(BOUNDS_MS, ms)


def bucket_range(index: int) -> tuple[float, float | None]:
    """Lower (inclusive) and upper (exclusive, None for the last bucket) bound of a bucket in ms."""
    lower = 0.0 if index == 0 else float(BOUNDS_MS[index - 1])
    upper = float(BOUNDS_MS[index]) if index < len(BOUNDS_MS) else None
    return lower, upper


def bucket_label(index: int) -> str:
    lower, upper = bucket_range(index)
    if upper is None:
        return f"≥{_ms_text(lower)}"
    return f"<{_ms_text(upper)}" if index == 0 else f"{_ms_text(lower)}-{_ms_text(upper)}"


def _ms_text(ms: float) -> str:
    return f"{ms / 1000:g}s" if ms >= 1000 else f"{ms:g}ms"


def rank(percentile: int, count: int) -> int:
    """The nearest rank: the 1-based position, in ascending order, of the value that is the percentile.

    rank = ceil(p/100 * N), computed in integers so that 95 % of 20 is exactly 19, never 20 by rounding.
    """
    if count <= 0:
        raise ValueError("a percentile of no values")
    return max(1, -(-percentile * count // 100))


def percentile_from_buckets(percentile: int, counts: list[int], *, maximum: float | None) -> float | None:
    """Approximate nearest-rank percentile from bucket counts: linear within the bucket holding the rank.

    The true value lies in that bucket, so the error is at most the bucket's width; the open last bucket and
    every estimate are capped at the known maximum.
    """
    total = sum(counts)
    if total == 0:
        return None
    wanted = rank(percentile, total)
    seen = 0
    for index, count in enumerate(counts):
        if count and seen + count >= wanted:
            lower, upper = bucket_range(index)
            top = maximum if upper is None else upper
            if top is None:
                return lower
            estimate = lower + (top - lower) * (wanted - seen) / count
            return min(estimate, maximum) if maximum is not None else estimate
        seen += count
    return maximum  # unreachable: the counts add up to total
