"""Refused input quoted back in messages (API answers, forms, stored refusals): always cut to a short length."""

from __future__ import annotations

from inference.integers import shown

# A message names what it refused; it never carries the whole of it (a 2 MB slug, a long pattern).
QUOTE_CHARS = 60
MESSAGE_CHARS = 500


def quoted(value: object, limit: int = QUOTE_CHARS) -> str:
    """repr() of a value sent to us, cut to `limit` characters with an ellipsis (a huge number is described)."""
    return shown(value, limit)


def clipped(text: str, limit: int = MESSAGE_CHARS) -> str:
    """`text` cut to `limit` characters, the last one an ellipsis when something was cut."""
    return text if len(text) <= limit else text[: limit - 1] + "…"
