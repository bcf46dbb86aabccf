"""The scheduler's settings: ranges, defaults, and the environment (a bad value is a clear error)."""

import pytest

from inference.settings import SchedulerSettings, SettingError, parse_setting


@pytest.mark.parametrize(
    ("name", "raw", "message"),
    [
        ("window_ms", "-1", "from 0 to 10000"),
        ("window_ms", "soon", "must be a whole number"),
        ("max_batch_size", "0", "from 1 to 256"),
        ("queue_limit", "0", "from 1 to 100000"),
        ("adaptive_window", "2", "from 0 to 1"),
        ("colour", "1", "unknown setting"),
    ],
)
def test_bad_settings_are_refused_with_a_clear_message(name, raw, message):
    with pytest.raises(SettingError, match=message):
        parse_setting(name, raw)


def test_settings_come_from_the_environment():
    settings = SchedulerSettings.from_env({"EDGE_WINDOW_MS": "25", "EDGE_DEFAULT_DEADLINE_MS": "5000"})
    assert (settings.window_ms, settings.default_deadline_ms, settings.max_batch_size) == (25, 5000, 8)
    with pytest.raises(SettingError, match="EDGE_WINDOW_MS: must be a whole number"):
        SchedulerSettings.from_env({"EDGE_WINDOW_MS": "fast"})


def test_a_long_prompt_or_a_long_output_limit_goes_to_the_long_lane():
    config = SchedulerSettings(long_prompt_tokens=256, long_output_tokens=200)
    assert config.lane_for(40) == config.lane_for(40, 199) == "short"
    assert config.lane_for(256) == config.lane_for(40, 200) == config.lane_for(40, 1_024) == "long"
