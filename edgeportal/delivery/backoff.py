"""How long a failed delivery waits before its next attempt."""

from __future__ import annotations

import random


def retry_delay_s(failures: int, *, base_s: float, max_s: float, rng: random.Random | None = None) -> float:
    """Exponential backoff with "equal jitter": after the nth failure in a row the ceiling is
    min(max_s, base_s * 2 ** (n - 1)), and the wait is drawn uniformly between half the ceiling and all of it.

    Half is fixed so attempts stay spread out (full jitter may draw ~0 several times running and burn the
    budget of attempts in seconds); half is random so deliveries that failed together (a receiver's restart)
    do not come back together.
    """
    ceiling = min(max_s, base_s * 2 ** min(max(failures, 1) - 1, 60))
    return ceiling / 2 + (rng or random).uniform(0, ceiling / 2)
