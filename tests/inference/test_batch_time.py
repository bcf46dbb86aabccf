"""Batch-time measurements: the lane average and the line over padded tokens (plain functions, no Redis)."""

import pytest

from inference.batch_time import batch_estimate_ms, padded_tokens, tokens_per_job, updated_measurements
from inference.queue import QueuedJob


def measure(samples, lane="short"):
    """The stored fields after these (ms, tokens, jobs) batches, as Redis hands them back: strings."""
    stats: dict[str, str] = {}
    for ms, tokens, jobs in samples:
        stats.update(updated_measurements(stats, lane, ms, tokens=tokens, jobs=jobs))
    return {name: float(value) for name, value in stats.items()}


def test_padded_tokens_count_every_job_at_the_longest_prompt():
    jobs = [QueuedJob(1, "a", 8, prompt_tokens=40), QueuedJob(2, "b", 8, prompt_tokens=55)]
    assert padded_tokens(jobs) == 110
    assert padded_tokens([]) == 0


def test_the_line_learns_how_batch_time_grows_with_tokens():
    measured = measure([(2_000, 50, 1), (3_000, 400, 8)] * 30)
    assert batch_estimate_ms(measured, "short", 50) == pytest.approx(2_000, abs=50)
    assert batch_estimate_ms(measured, "short", 400) == pytest.approx(3_000, abs=50)
    assert batch_estimate_ms(measured, "short", 225) == pytest.approx(2_500, abs=50)
    # Without a size, the lane-wide plan: the mix, and a deviation made of the mix.
    assert batch_estimate_ms(measured, "short") > 3_200
    assert tokens_per_job(measured, "short") == pytest.approx(50)


def test_the_line_stays_flat_until_sizes_differ_and_enough_batches_ran():
    two = measure([(2_000, 50, 1), (3_000, 400, 8)])
    assert batch_estimate_ms(two, "short", 50) == batch_estimate_ms(two, "short", 400)  # two points: no slope yet
    same_size = measure([(2_000, 400, 8), (2_200, 400, 8), (2_100, 400, 8), (2_000, 400, 8)])
    assert batch_estimate_ms(same_size, "short", 50) == batch_estimate_ms(same_size, "short", 400)


def test_more_tokens_never_plan_less_time():
    noisy = measure([(3_000, 50, 1), (2_000, 400, 8)] * 10)  # bigger batches measured faster: noise
    assert batch_estimate_ms(noisy, "short", 400) >= batch_estimate_ms(noisy, "short", 50)


def test_the_first_batch_plans_with_a_wide_margin_and_lanes_are_apart():
    first = measure([(4_000, 1_500, 1)], lane="long")
    assert batch_estimate_ms(first, "long", 1_500) == 8_000  # 4 s and a deviation of half of it, twice
    assert batch_estimate_ms(first, "long") == 8_000
    assert batch_estimate_ms(first, "short", 50) == 0  # nothing measured in the short lane


def test_a_batch_recorded_without_tokens_updates_only_the_average():
    stats = updated_measurements({}, "short", 1_000)
    assert set(stats) == {"batch_ms:short", "batch_dev_ms:short"}
