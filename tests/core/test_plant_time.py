"""The plant's time zone (EDGE_TIME_ZONE): pages show and read local time; files and the API keep offsets."""

from datetime import UTC, datetime

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.template import Context, Template
from django.test import override_settings

from edgeportal.latency.charts import time_ticks
from edgeportal.latency.forms import HistoryFilterForm
from edgeportal.latency.selectors import timeline_slots
from edgeportal.settings import plant_time_zone

SHANGHAI = "Asia/Shanghai"  # a fixed offset, +08:00
BERLIN = "Europe/Berlin"  # daylight saving: +01:00 in winter, +02:00 in summer


def render_local(value, precision="seconds"):
    return Template("{% load plant_time %}{{ value|local:precision }}").render(
        Context({"value": value, "precision": precision})
    )


def test_the_zone_setting_takes_iana_names_and_refuses_anything_else():
    assert plant_time_zone("") == "UTC" and plant_time_zone(" Asia/Shanghai ") == SHANGHAI
    for bad in ("Mars/Olympus", "CST+8", "../../etc/passwd", "Asia/"):
        with pytest.raises(ImproperlyConfigured, match="EDGE_TIME_ZONE"):
            plant_time_zone(bad)


@override_settings(TIME_ZONE=SHANGHAI)
def test_a_time_shows_in_the_plants_zone_with_the_zone_named_and_the_moment_kept():
    html = render_local(datetime(2026, 11, 30, 16, 5, 9, tzinfo=UTC))
    assert ">2026-12-01 00:05:09 CST</time>" in html
    assert 'datetime="2026-12-01T00:05:09+08:00"' in html and 'title="Asia/Shanghai, UTC+08:00"' in html
    assert render_local(None) == "—"


@override_settings(TIME_ZONE=BERLIN)
def test_a_daylight_saving_zone_shows_each_date_with_its_own_offset():
    winter = render_local(datetime(2026, 1, 15, 12, 0, tzinfo=UTC), "minutes")
    summer = render_local(datetime(2026, 7, 15, 12, 0, tzinfo=UTC), "minutes")
    assert ">2026-01-15 13:00 CET</time>" in winter and "+01:00" in winter
    assert ">2026-07-15 14:00 CEST</time>" in summer and "+02:00" in summer
    precise = render_local(datetime(2026, 7, 15, 12, 0, 0, 250_000, tzinfo=UTC), "precise")
    assert ">14:00:00.250000 CEST</time>" in precise


@override_settings(TIME_ZONE=SHANGHAI)
def test_history_filters_read_local_times():
    form = HistoryFilterForm({"date_from": "2026-12-01T08:00", "date_to": "2026-12-01T09:30"})
    assert form.is_valid(), form.errors
    filters = form.filters()
    assert filters.start == datetime(2026, 12, 1, 0, 0, tzinfo=UTC)
    assert filters.end == datetime(2026, 12, 1, 1, 30, tzinfo=UTC)


@override_settings(TIME_ZONE=BERLIN)
def test_history_filters_follow_daylight_saving_and_refuse_a_time_the_clock_skipped():
    summer = HistoryFilterForm({"date_from": "2026-07-01T08:00"})
    assert summer.is_valid() and summer.filters().start == datetime(2026, 7, 1, 6, 0, tzinfo=UTC)
    winter = HistoryFilterForm({"date_from": "2026-01-01T08:00"})
    assert winter.is_valid() and winter.filters().start == datetime(2026, 1, 1, 7, 0, tzinfo=UTC)
    skipped = HistoryFilterForm({"date_from": "2026-03-29T02:30"})  # clocks jump from 02:00 to 03:00
    assert not skipped.is_valid() and "Europe/Berlin" in str(skipped.errors["date_from"])
    repeated = HistoryFilterForm({"date_from": "2026-10-25T02:30"})  # clocks go back from 03:00 to 02:00
    assert repeated.is_valid(), repeated.errors
    assert repeated.filters().start == datetime(2026, 10, 25, 0, 30, tzinfo=UTC)  # the first 02:30, still CEST


@override_settings(TIME_ZONE=SHANGHAI)
def test_chart_ticks_and_day_slots_follow_the_local_clock():
    start, end = datetime(2026, 11, 20, 3, 0, tzinfo=UTC), datetime(2026, 11, 30, 3, 0, tzinfo=UTC)
    origin, width = timeline_slots(start, end, minimum_s=86400)
    assert width == 86400 and origin == datetime(2026, 11, 19, 16, 0, tzinfo=UTC)  # midnight in Shanghai
    ticks = time_ticks(datetime(2026, 11, 30, 16, 0, tzinfo=UTC), datetime(2026, 11, 30, 20, 0, tzinfo=UTC), count=2)
    assert [label for _, label in ticks] == ["12-01 00:00", "12-01 04:00"]


@override_settings(TIME_ZONE="Asia/Kolkata")  # +05:30
def test_hour_slots_in_a_half_hour_zone_stay_on_the_utc_hours_the_aggregates_use():
    start, end = datetime(2026, 11, 20, 3, 10, tzinfo=UTC), datetime(2026, 11, 23, 3, 0, tzinfo=UTC)
    origin, width = timeline_slots(start, end, minimum_s=3600)
    assert width >= 3600 and origin.minute == 0 and origin.second == 0
