"""Server-rendered SVG charts (bars and lines with axes): no JavaScript, no CDN, every text escaped here."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from html import escape

from django.utils.safestring import SafeString, mark_safe
from django.utils.timezone import localtime
from django.utils.translation import gettext, ngettext

WIDTH, HEIGHT = 720, 240
LEFT, RIGHT, TOP, BOTTOM = 64, 16, 24, 44  # room for the axes' labels
PLOT_W, PLOT_H = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM


@dataclass(frozen=True)
class Series:
    name: str
    points: list[tuple[float, float | None]]  # (x, y); None leaves a gap in the line


def nice_ceiling(value: float) -> float:
    """The smallest 1, 2, 2.5 or 5 times a power of ten that is at least value: a round top for an axis."""
    if value <= 0 or math.isnan(value):
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        if step * power >= value * (1 - 1e-9):
            return step * power
    return 10 * power


def number_text(value: float) -> str:
    if value >= 100 or value == int(value):
        return f"{value:,.0f}"
    return f"{value:.1f}"


def duration_text(seconds: int) -> str:
    """A slot width in words, in the page's language: 300 -> "5 minutes", 10800 -> "3 hours", 86400 -> "day"."""
    units = (
        (86400, gettext("day"), lambda n: ngettext("%(count)d day", "%(count)d days", n)),
        (3600, gettext("hour"), lambda n: ngettext("%(count)d hour", "%(count)d hours", n)),
        (60, gettext("minute"), lambda n: ngettext("%(count)d minute", "%(count)d minutes", n)),
    )
    for size, one, many in units:
        if seconds % size == 0:
            count = seconds // size
            return one if count == 1 else many(count) % {"count": count}
    return ngettext("%(count)d second", "%(count)d seconds", seconds) % {"count": seconds}


def time_ticks(start: datetime, end: datetime, *, count: int = 6) -> list[tuple[float, str]]:
    """Evenly spaced x-axis ticks between two moments, labelled by the plant's local date, or date and time
    for short ranges."""
    first, last = start.timestamp(), end.timestamp()
    if last <= first:
        last = first + 1
    fmt = "%m-%d" if last - first > 4 * 86400 else "%m-%d %H:%M"
    step = (last - first) / (count - 1)
    moments = [first + i * step for i in range(count)]
    return [(moment, localtime(datetime.fromtimestamp(moment, tz=UTC)).strftime(fmt)) for moment in moments]


def _open(title: str, testid: str, data: dict[str, str]) -> list[str]:
    attributes = "".join(f' data-{escape(key)}="{escape(value)}"' for key, value in data.items())
    return [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" data-testid="{escape(testid)}"{attributes}>',
        f"<title>{escape(title)}</title>",
    ]


def _y_axis(top: float, y_label: str) -> list[str]:
    parts = []
    for i in range(5):
        value = top * i / 4
        y = TOP + PLOT_H - PLOT_H * i / 4
        parts.append(f'<line class="grid" x1="{LEFT}" y1="{y:.1f}" x2="{WIDTH - RIGHT}" y2="{y:.1f}"/>')
        parts.append(f'<text class="tick" x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{number_text(value)}</text>')
    parts.append(f'<text class="axis-label" x="4" y="{TOP - 8}">{escape(y_label)}</text>')
    return parts


def _y(value: float, top: float) -> float:
    return TOP + PLOT_H - PLOT_H * min(value, top) / top


def bar_chart(*, labels: list[str], values: list[float], title: str, y_label: str, testid: str) -> SafeString:
    """One bar per label; each bar's tooltip gives its exact value."""
    top = nice_ceiling(max(values, default=0))
    parts = _open(title, testid, {"total": number_text(sum(values)), "bars": str(len(values))})
    parts += _y_axis(top, y_label)
    slot = PLOT_W / max(len(values), 1)
    for i, (label, value) in enumerate(zip(labels, values, strict=True)):
        x = LEFT + i * slot
        y = _y(value, top)
        parts.append(
            f'<rect class="bar" x="{x + slot * 0.1:.1f}" y="{y:.1f}" width="{slot * 0.8:.1f}" '
            f'height="{TOP + PLOT_H - y:.1f}"><title>{escape(label)}: {number_text(value)}</title></rect>'
        )
        # Slanted: a dozen bucket names side by side would overlap.
        label_x, label_y = x + slot / 2 + 3, HEIGHT - BOTTOM + 10
        parts.append(
            f'<text class="tick" x="{label_x:.1f}" y="{label_y}" text-anchor="end" '
            f'transform="rotate(-35 {label_x:.1f} {label_y})">{escape(label)}</text>'
        )
    parts.append("</svg>")
    return mark_safe("".join(parts))  # every text above went through escape()


def line_chart(
    *, series: list[Series], x_ticks: list[tuple[float, str]], title: str, y_label: str, testid: str
) -> SafeString:
    """Lines over a numeric x axis (seconds since the epoch for time); a lone point between gaps is a dot."""
    xs = [x for s in series for x, _ in s.points] + [x for x, _ in x_ticks]
    ys = [y for s in series for _, y in s.points if y is not None]
    x_min, x_max = (min(xs), max(xs)) if xs else (0.0, 1.0)
    x_span = (x_max - x_min) or 1.0
    top = nice_ceiling(max(ys, default=0))
    parts = _open(title, testid, {"points": str(len(ys))})
    parts += _y_axis(top, y_label)

    def x_at(x: float) -> float:
        return LEFT + PLOT_W * (x - x_min) / x_span

    for number, (x, label) in enumerate(x_ticks):
        # The outer labels align inwards so that they stay inside the picture.
        anchor = "start" if number == 0 else "end" if number == len(x_ticks) - 1 else "middle"
        x_text = f'x="{x_at(x):.1f}" y="{HEIGHT - BOTTOM + 16}"'
        parts.append(f'<text class="tick" {x_text} text-anchor="{anchor}">{escape(label)}</text>')
    for number, line in enumerate(series):
        runs: list[list[tuple[float, float]]] = [[]]
        for x, y in line.points:
            if y is None:
                runs.append([])
            else:
                runs[-1].append((x_at(x), _y(y, top)))
        for run in runs:
            if len(run) == 1:
                parts.append(f'<circle class="series-{number}" cx="{run[0][0]:.1f}" cy="{run[0][1]:.1f}" r="2.5"/>')
            elif run:
                points = " ".join(f"{x:.1f},{y:.1f}" for x, y in run)
                parts.append(f'<polyline class="series-{number}" points="{points}"/>')
        legend_x = LEFT + 8 + number * 170
        parts.append(f'<rect class="series-{number} legend" x="{legend_x}" y="{TOP - 18}" width="10" height="10"/>')
        parts.append(f'<text class="legend" x="{legend_x + 14}" y="{TOP - 9}">{escape(line.name)}</text>')
    parts.append("</svg>")
    return mark_safe("".join(parts))  # every text above went through escape()
