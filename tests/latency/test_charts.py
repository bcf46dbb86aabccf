import re
from datetime import UTC, datetime

from edgeportal.latency.charts import Series, bar_chart, duration_text, line_chart, nice_ceiling, time_ticks


def test_axis_tops_are_round_numbers_at_least_the_largest_value():
    assert [nice_ceiling(v) for v in (0, 0.7, 1, 3, 180, 201, 2400, 7001)] == [1, 1, 1, 5, 200, 250, 2500, 10000]


def test_a_bar_chart_draws_one_bar_per_value_scaled_to_the_axis_top():
    svg = bar_chart(labels=["a", "b", "c"], values=[0, 50, 100], title="T", y_label="jobs", testid="h")
    heights = [float(h) for h in re.findall(r'class="bar"[^>]*height="([\d.]+)"', svg)]
    assert len(heights) == 3
    assert heights[0] == 0 and heights[1] * 2 == heights[2] > 0
    assert 'data-testid="h"' in svg and 'data-total="150"' in svg


def test_chart_texts_are_escaped():
    svg = bar_chart(labels=["<script>"], values=[1], title='"x" & y', y_label="<b>", testid="t")
    assert "<script>" not in svg and "&lt;script&gt;" in svg
    assert "<b>" not in svg and "&quot;x&quot; &amp; y" in svg
    line = line_chart(series=[Series("<i>", [(0, 1), (1, 2)])], x_ticks=[(0, "<u>")], title="t", y_label="", testid="l")
    assert "<i>" not in line and "<u>" not in line


def test_a_missing_value_breaks_the_line_and_a_lone_point_is_a_dot():
    series = Series("mean", [(0, 1.0), (1, 2.0), (2, None), (3, 4.0), (4, None), (5, 1.0), (6, 1.5)])
    svg = line_chart(series=[series], x_ticks=[], title="t", y_label="ms", testid="l")
    assert svg.count("<polyline") == 2
    assert svg.count("<circle") == 1


def test_time_ticks_span_the_range_with_readable_labels():
    ticks = time_ticks(datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 1, 5, tzinfo=UTC), count=6)
    assert [label for _, label in ticks] == ["01-01 00:00", "01-01 01:00", "01-01 02:00", "01-01 03:00",
                                             "01-01 04:00", "01-01 05:00"]  # fmt: skip
    long = time_ticks(datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 31, tzinfo=UTC), count=4)
    assert [label for _, label in long] == ["01-01", "01-11", "01-21", "01-31"]


def test_slot_widths_read_as_words():
    assert [duration_text(s) for s in (60, 300, 3600, 10800, 86400, 7 * 86400, 90)] == [
        "minute", "5 minutes", "hour", "3 hours", "day", "7 days", "90 seconds",
    ]  # fmt: skip
