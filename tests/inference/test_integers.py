"""The one strict whole-number parser: ASCII digits with an optional sign, bounded, range-checked."""

import pytest

from inference.integers import IntegerError, parse_int

# Each of these int() takes (or a JSON body holds) though no one means a whole number of that kind by it.
NOT_WHOLE_NUMBERS = ["²", "٣", "१२", "1_000", " 12 ", "12\n", "1e3", "12.0", "0x10", "", "+", "--1", "１２"]


@pytest.mark.parametrize("raw", NOT_WHOLE_NUMBERS)
def test_text_that_int_would_take_is_refused_with_the_field_named(raw):
    with pytest.raises(IntegerError, match=r"^window_ms must be a whole number from 0 to 100 \(digits 0-9\)"):
        parse_int(raw, field="window_ms", low=0, high=100)


@pytest.mark.parametrize("raw", [True, False, 5.0, 1e3, float("nan"), None, [1], {"a": 1}])
def test_booleans_floats_and_other_json_values_are_refused(raw):
    with pytest.raises(IntegerError, match="deadline_ms must be a whole number") as error:
        parse_int(raw, field="deadline_ms", low=1, high=10)
    assert error.value.field == "deadline_ms"


@pytest.mark.parametrize("raw", ["9" * 20, "9" * 5000, 10**30, -(10**40)])
def test_huge_numbers_are_refused_without_being_written_out(raw):
    with pytest.raises(IntegerError) as error:
        parse_int(raw, field="n")
    assert len(error.value.message) < 120


@pytest.mark.parametrize(("raw", "value"), [("12", 12), ("+3", 3), ("-4", -4), ("007", 7), (42, 42), (-1, -1)])
def test_ascii_digits_with_an_optional_sign_and_ints_are_taken(raw, value):
    assert parse_int(raw, field="n") == value


def test_the_range_is_checked_and_named():
    assert parse_int("60", field="minutes", low=1, high=60) == 60
    with pytest.raises(IntegerError, match="minutes must be a whole number from 1 to 60, got 61"):
        parse_int(61, field="minutes", low=1, high=60)
    with pytest.raises(IntegerError, match="n must be a whole number of at least 1, got 0"):
        parse_int("0", field="n", low=1)
