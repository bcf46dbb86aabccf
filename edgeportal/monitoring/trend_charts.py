"""The dashboard's trend as SVG line charts, one per question a shift manager asks of the last fifteen minutes."""

from __future__ import annotations

from django.utils.safestring import SafeString
from django.utils.translation import gettext as _

from edgeportal.latency.charts import Series, line_chart, time_ticks
from edgeportal.monitoring.trend import TrendMinute
from inference.lanes import LANES

MOST_RULES = 4  # refusal rules drawn as their own line; a legend has room for about four


def trend_charts(minutes: list[TrendMinute]) -> dict[str, SafeString]:
    """Queue depth per lane, p50/p95 total latency, jobs per minute, refusals by rule, expired jobs and the
    cache hit rate, each minute a point at its start (the open minute last)."""
    xs = [minute.start.timestamp() for minute in minutes]
    ticks = time_ticks(minutes[0].start, minutes[-1].start, count=4)

    def line(name: str, values) -> Series:
        return Series(name, list(zip(xs, values, strict=True)))

    rules: dict[str, int] = {}
    for minute in minutes:
        for rule, count in minute.refused.items():
            rules[rule] = rules.get(rule, 0) + count
    top_rules = sorted(rules, key=lambda rule: (-rules[rule], rule))[:MOST_RULES]
    return {
        "depth": line_chart(
            series=[line(_(lane), [m.depths.get(lane) for m in minutes]) for lane in LANES],
            x_ticks=ticks,
            title=_("Queue depth per lane (deepest seen each minute)"),
            y_label=_("jobs"),
            testid="trend-depth",
        ),
        "latency": line_chart(
            series=[
                line("p50", [m.percentile_ms(50) for m in minutes]),
                line("p95", [m.percentile_ms(95) for m in minutes]),
            ],
            x_ticks=ticks,
            title=_("Total latency per minute (≈, from latency buckets)"),
            y_label="ms",
            testid="trend-latency",
        ),
        "jobs": line_chart(
            series=[
                line(_("finished"), [m.jobs for m in minutes]),
                line(_("expired"), [m.finished.get("expired", 0) for m in minutes]),
            ],
            x_ticks=ticks,
            title=_("Jobs per minute"),
            y_label=_("jobs"),
            testid="trend-jobs",
        ),
        "refusals": line_chart(
            series=[line(rule, [m.refused.get(rule, 0) for m in minutes]) for rule in top_rules]
            or [line(_("refused"), [0 for _m in minutes])],
            x_ticks=ticks,
            title=_("Refusals per minute, by rule"),
            y_label=_("requests"),
            testid="trend-refusals",
        ),
        "cache": line_chart(
            series=[line(_("cache hits"), [m.cache_hit_pct for m in minutes])],
            x_ticks=ticks,
            title=_("Cache hit rate"),
            y_label="%",
            testid="trend-cache",
        ),
    }
