"""Strict whole-number parsing, for every number people and machines send (API, forms, YAML, settings).

Pure Python, no Django: the scheduler's settings use it as well as the web side.
"""

from __future__ import annotations

import re

from inference.messages import gettext_noop

# ASCII digits only, with an optional sign. Python's int() also takes "²"'s neighbours ("٣", "১"), "1_000" and
# surrounding whitespace; a number that reaches us in any of those forms is a mistake or a probe, not a number.
_WHOLE = re.compile(r"[+-]?[0-9]+")
# Longer than any number we take (int64 has 19 digits): refused before int(), whose cost grows with the length.
MAX_DIGITS = 19
_TOO_BIG = 10**MAX_DIGITS


class IntegerError(ValueError):
    """A value that is not a whole number in range; message names the field and says what it takes, in English
    (text with %(name)s fields and their params: the pages translate text)."""

    def __init__(self, text: str, field: str, **params: object):
        self.text, self.params, self.field = text, {"field": field, **params}, field
        self.message = text % self.params
        super().__init__(self.message)


# The refusals, one whole sentence each, so that a translation can order its words.
_RANGES = {
    (True, True): gettext_noop("%(field)s must be a whole number from %(low)d to %(high)d, got %(value)s."),
    (True, False): gettext_noop("%(field)s must be a whole number of at least %(low)d, got %(value)s."),
    (False, True): gettext_noop("%(field)s must be a whole number of at most %(high)d, got %(value)s."),
    (False, False): gettext_noop("%(field)s must be a whole number, got %(value)s."),
}
_DIGITS = {
    (True, True): gettext_noop(
        "%(field)s must be a whole number from %(low)d to %(high)d (digits 0-9), got %(value)s."
    ),
    (True, False): gettext_noop("%(field)s must be a whole number of at least %(low)d (digits 0-9), got %(value)s."),
    (False, True): gettext_noop("%(field)s must be a whole number of at most %(high)d (digits 0-9), got %(value)s."),
    (False, False): gettext_noop("%(field)s must be a whole number (digits 0-9), got %(value)s."),
}


def shown(raw: object, limit: int = 40) -> str:
    """The refused value as a message quotes it: repr, cut to `limit` characters (a huge int is not written out)."""
    if isinstance(raw, int) and abs(raw) >= _TOO_BIG:
        return f"a number of more than {MAX_DIGITS} digits"
    text = repr(raw) if raw is None or isinstance(raw, str | int | float) else type(raw).__name__
    return text if len(text) <= limit else text[: limit - 1] + "…"


def parse_int(raw: object, *, field: str, low: int | None = None, high: int | None = None) -> int:
    """`raw` as an int if it is one (not a bool) or text of ASCII digits with an optional sign, within
    [low, high] (None: no bound); otherwise IntegerError naming the field, the range and the value.

    Floats are refused even when whole (1e3, 5.0): a count or a time in ms is sent as a whole number.
    """
    bounds = (low is not None, high is not None)
    if isinstance(raw, bool) or not isinstance(raw, int | str):
        raise IntegerError(_RANGES[bounds], field, low=low, high=high, value=shown(raw))
    if isinstance(raw, str):
        if len(raw) > MAX_DIGITS + 1 or not _WHOLE.fullmatch(raw):
            raise IntegerError(_DIGITS[bounds], field, low=low, high=high, value=shown(raw))
        value = int(raw)
    else:
        value = raw
    out_of_range = (low is not None and value < low) or (high is not None and value > high)
    if out_of_range or abs(value) >= _TOO_BIG:
        raise IntegerError(_RANGES[bounds], field, low=low, high=high, value=shown(value))
    return value
