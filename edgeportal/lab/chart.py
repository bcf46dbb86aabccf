"""The run page's chart: p95 latency (left axis) and throughput (right axis) against window, laid out for SVG.

Drawn on the server so the page needs no JavaScript and no chart library: this module only computes
coordinates; templates/lab/chart.html draws them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

WIDTH, HEIGHT = 680, 320
LEFT, RIGHT, TOP, BOTTOM = 70, 70, 20, 50  # margins for the axes' labels


@dataclass(frozen=True)
class Tick:
    position: float
    label: str


@dataclass(frozen=True)
class Dot:
    x: float
    y: float
    label: str


@dataclass(frozen=True)
class Chart:
    width: int
    height: int
    left: float
    right: float
    top: float
    bottom: float
    window_ticks: list[Tick]
    latency_ticks: list[Tick]
    throughput_ticks: list[Tick]
    latency_dots: list[Dot]
    throughput_dots: list[Dot]
    target_y: float | None

    @property
    def latency_line(self) -> str:
        return " ".join(f"{d.x:.1f},{d.y:.1f}" for d in self.latency_dots)

    @property
    def throughput_line(self) -> str:
        return " ".join(f"{d.x:.1f},{d.y:.1f}" for d in self.throughput_dots)


def nice_step(span: float, intervals: int = 4) -> float:
    """A round step (1, 2 or 5 times a power of ten) that covers `span` in about `intervals` steps."""
    raw = span / intervals if span > 0 else 1.0
    power = 10 ** math.floor(math.log10(raw))
    return next(m * power for m in (1, 2, 5, 10) if m * power >= raw)


def _axis(maximum: float) -> tuple[float, list[float]]:
    step = nice_step(maximum)
    top = step * max(1, math.ceil(maximum / step - 1e-9))
    return top, [round(step * i, 10) for i in range(round(top / step) + 1)]


def chart_build(points: Sequence, *, target_p95_ms: float | None = None) -> Chart | None:
    """Points need window_ms, p95_ms and throughput; None when there is nothing to draw."""
    if not points:
        return None
    left, right, top, bottom = LEFT, WIDTH - RIGHT, TOP, HEIGHT - BOTTOM
    windows = [p.window_ms for p in points]
    low, high = min(windows), max(windows)

    def x_of(window: float) -> float:
        if high == low:
            return (left + right) / 2
        return left + (window - low) / (high - low) * (right - left)

    latency_top, latency_values = _axis(max([p.p95_ms for p in points] + [target_p95_ms or 0]))
    throughput_top, throughput_values = _axis(max(p.throughput for p in points))

    def y_latency(ms: float) -> float:
        return bottom - ms / latency_top * (bottom - top)

    def y_throughput(rate: float) -> float:
        return bottom - rate / throughput_top * (bottom - top)

    return Chart(
        width=WIDTH,
        height=HEIGHT,
        left=left,
        right=right,
        top=top,
        bottom=bottom,
        window_ticks=[Tick(x_of(w), f"{w}") for w in windows],
        latency_ticks=[Tick(y_latency(v), f"{v:,.0f}") for v in latency_values],
        throughput_ticks=[Tick(y_throughput(v), f"{v:g}") for v in throughput_values],
        latency_dots=[Dot(x_of(p.window_ms), y_latency(p.p95_ms), f"{p.p95_ms:,.0f} ms") for p in points],
        throughput_dots=[
            Dot(x_of(p.window_ms), y_throughput(p.throughput), f"{p.throughput:.2f} jobs/s") for p in points
        ],
        target_y=y_latency(target_p95_ms) if target_p95_ms else None,
    )
