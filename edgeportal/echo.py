"""Refused input quoted back in messages (API answers, forms, stored refusals): always cut to a short length."""

from __future__ import annotations

# A message names what it refused; it never carries the whole of it (a 2 MB slug, a long pattern).
QUOTE_CHARS = 60
MESSAGE_CHARS = 500


def quoted(value: object, limit: int = QUOTE_CHARS) -> str:
    """repr() of a value sent to us, cut to `limit` characters with an ellipsis."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 64:
        return "a very large number"  # repr() of a huge int is slow, and refused beyond 4300 digits
    text = repr(value) if value is None or isinstance(value, str | int | float) else type(value).__name__
    return clipped(text, limit)


def clipped(text: str, limit: int = MESSAGE_CHARS) -> str:
    """`text` cut to `limit` characters, the last one an ellipsis when something was cut."""
    return text if len(text) <= limit else text[: limit - 1] + "…"
