"""The wait before a failed delivery's next attempt: exponential, capped, jittered."""

import random

from edgeportal.delivery.backoff import retry_delay_s


def test_each_wait_lies_between_half_and_all_of_a_doubling_ceiling():
    rng = random.Random(7)
    for failures, ceiling in [(1, 2), (2, 4), (3, 8), (4, 16), (5, 32)]:
        waits = [retry_delay_s(failures, base_s=2, max_s=300, rng=rng) for _ in range(500)]
        assert ceiling / 2 <= min(waits) and max(waits) <= ceiling
        # jittered: spread over the range, so deliveries that failed together come back apart
        assert max(waits) - min(waits) > ceiling * 0.4


def test_the_ceiling_stops_at_the_maximum_however_many_failures():
    for failures in (9, 20, 10_000):
        wait = retry_delay_s(failures, base_s=2, max_s=300)
        assert 150 <= wait <= 300


def test_the_total_wait_of_a_full_budget_is_bounded():
    # The defaults: 10 attempts, 2 s doubling to at most 300 s: a dead letter within about 14 minutes.
    longest = sum(retry_delay_s(n, base_s=2, max_s=300, rng=random.Random(n)) for n in range(1, 10))
    assert longest <= 2 + 4 + 8 + 16 + 32 + 64 + 128 + 256 + 300
