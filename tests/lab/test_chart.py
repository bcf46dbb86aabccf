from types import SimpleNamespace

import pytest

from edgeportal.lab.chart import HEIGHT, chart_build, nice_step


def point(window_ms, p95_ms, throughput):
    return SimpleNamespace(window_ms=window_ms, p95_ms=p95_ms, throughput=throughput)


def test_nice_steps_are_one_two_or_five_times_a_power_of_ten():
    assert nice_step(4000) == 1000
    assert nice_step(4400) == 2000
    assert nice_step(1.7) == 0.5
    assert nice_step(0) == 1


def test_windows_span_the_width_and_the_highest_values_reach_their_axis_tops():
    chart = chart_build([point(0, 1000, 1.0), point(60, 2000, 2.0), point(250, 4000, 1.5)])
    xs = [d.x for d in chart.latency_dots]
    assert xs[0] == chart.left and xs[-1] == chart.right
    assert xs[1] == pytest.approx(chart.left + 60 / 250 * (chart.right - chart.left))
    assert chart.latency_dots[2].y == chart.top  # 4000 ms is the top tick
    assert chart.throughput_dots[1].y == chart.top
    assert [t.label for t in chart.latency_ticks] == ["0", "1,000", "2,000", "3,000", "4,000"]
    assert chart.latency_ticks[0].position == chart.bottom == HEIGHT - 50
    assert chart.target_y is None


def test_the_target_line_fits_on_the_latency_axis_even_above_every_point():
    chart = chart_build([point(0, 1000, 1.0), point(60, 1500, 2.0)], target_p95_ms=3000)
    assert chart.target_y >= chart.top
    assert chart.target_y < chart.latency_dots[1].y  # drawn above the highest p95


def test_a_single_window_sits_in_the_middle_and_nothing_is_drawn_without_points():
    chart = chart_build([point(60, 1000, 1.0)])
    assert chart.latency_dots[0].x == (chart.left + chart.right) / 2
    assert chart.latency_line.count(",") == 1
    assert chart_build([]) is None
