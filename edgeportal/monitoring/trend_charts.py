"""The dashboard's trend as SVG line charts, one per question a shift manager asks of the last fifteen minutes."""

from __future__ import annotations

from dataclasses import dataclass

from django.utils.safestring import SafeString
from django.utils.translation import gettext as _

from edgeportal.jobs.refusals import rule_label
from edgeportal.latency.charts import Series, line_chart, time_ticks
from edgeportal.monitoring.trend import TrendMinute
from inference.lanes import LANES

MOST_RULES = 4  # refusal rules drawn as their own line; a legend has room for about four


@dataclass(frozen=True)
class TrendChart:
    name: str
    title: str
    svg: SafeString


def trend_charts(minutes: list[TrendMinute]) -> list[TrendChart]:
    """Queue depth per lane, p50/p95 total latency, jobs per minute, refusals by rule, expired jobs and the
    cache hit rate, each minute a point at its start (the open minute last)."""
    xs = [minute.start.timestamp() for minute in minutes]
    ticks = time_ticks(minutes[0].start, minutes[-1].start, count=4)

    def line(name: str, values) -> Series:
        return Series(name, list(zip(xs, values, strict=True)))

    def chart(name: str, title: str, series: list[Series], y_label: str) -> TrendChart:
        svg = line_chart(series=series, x_ticks=ticks, title=title, y_label=y_label, testid=f"trend-{name}")
        return TrendChart(name, title, svg)

    rules: dict[str, int] = {}
    for minute in minutes:
        for rule, count in minute.refused.items():
            rules[rule] = rules.get(rule, 0) + count
    top_rules = sorted(rules, key=lambda rule: (-rules[rule], rule))[:MOST_RULES]
    refusals = [line(rule_label(rule), [m.refused.get(rule, 0) for m in minutes]) for rule in top_rules]
    return [
        chart(
            "depth",
            _("Queue depth per lane (deepest seen each minute)"),
            [line(_(lane), [m.depths.get(lane) for m in minutes]) for lane in LANES],
            _("jobs"),
        ),
        chart(
            "latency",
            _("Total latency per minute (≈, from latency buckets)"),
            [line("p50", [m.percentile_ms(50) for m in minutes]), line("p95", [m.percentile_ms(95) for m in minutes])],
            "ms",
        ),
        chart(
            "jobs",
            _("Jobs per minute"),
            [
                line(_("finished"), [m.jobs for m in minutes]),
                line(_("expired"), [m.finished.get("expired", 0) for m in minutes]),
            ],
            _("jobs"),
        ),
        chart(
            "refusals",
            _("Refusals per minute, by rule"),
            refusals or [line(_("refused"), [0 for _minute in minutes])],
            _("requests"),
        ),
        chart("cache", _("Cache hit rate"), [line(_("cache hits"), [m.cache_hit_pct for m in minutes])], "%"),
    ]
