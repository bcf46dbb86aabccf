"""Batch-time measurements: the lane average and the line over padded tokens (plain functions, no Redis)."""

import pytest

from inference.batch_time import (
    STALE_HALF_LIFE_S,
    batch_estimate_ms,
    central_estimate_ms,
    model_prior,
    output_extra_ms,
    padded_tokens,
    tokens_per_job,
    updated_measurements,
    warm_up_baseline,
)
from inference.planning import batch_central_by_size, batch_ms_of_size, expires, full_batch_central_ms
from inference.settings import SchedulerSettings
from inference.store.queue import QueuedJob


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


def test_one_wild_batch_cannot_plan_more_than_twice_the_central_estimate():
    overload = measure([(1_000, 50, 1)] * 10 + [(10_000, 50, 1)])  # the last ran while the node was swamped
    central = overload["batch_ms:short"]
    assert overload["batch_dev_ms:short"] <= central / 2
    assert batch_estimate_ms(overload, "short") == pytest.approx(2 * central)
    assert batch_estimate_ms(overload, "short", 50) <= 2 * central_estimate_ms(overload, "short", 50) + 1e-6


WARM_UP = warm_up_baseline(one=(40, 2_000), full=(320, 3_400), chunk=(256, 640))


def test_the_warm_up_gives_both_lanes_a_line():
    base = {name: float(value) for name, value in WARM_UP.items()}
    assert central_estimate_ms(base, "short", 40) == pytest.approx(2_000)
    assert central_estimate_ms(base, "short", 320) == pytest.approx(3_400)
    assert central_estimate_ms(base, "short") == pytest.approx(3_400)  # a typical batch: the full one
    assert central_estimate_ms(base, "long", 1_000) == pytest.approx(2_000 + 1_000 * 2.5)  # decodes, then reads
    # One sample each, on an idle node: planned at twice its time, as a first batch is.
    assert batch_estimate_ms(base, "short", 320) == pytest.approx(3_400 * 2)
    assert batch_estimate_ms(base, "short", 320) == batch_estimate_ms(measure([(3_400, 320, 8)]), "short", 320)


def test_before_any_batch_the_warm_up_job_is_the_lanes_usual_job_and_batches_are_judged_by_size():
    base = {name: float(value) for name, value in WARM_UP.items()}
    assert (tokens_per_job(base, "short"), tokens_per_job(base, "long")) == (40, 256)
    assert tokens_per_job({**base, "job_tokens:short": 55.0}, "short") == 55  # measured wins
    by_size = batch_central_by_size(SchedulerSettings(max_batch_size=8), base, "short")
    assert len(by_size) == 8 and by_size == sorted(by_size)
    assert by_size[0] == pytest.approx(2_000) and by_size[-1] == pytest.approx(3_400)  # one job; a full batch
    assert by_size[-1] == full_batch_central_ms(SchedulerSettings(max_batch_size=8), base, "short")
    assert batch_central_by_size(SchedulerSettings(), {}, "short") == [0.0]  # nothing known: one number


def test_a_line_without_a_slope_takes_the_baselines_shape():
    # Every batch full (one size: no slope to learn), and the node 1.5 times slower than at its warm-up.
    full = {**measure([(5_100, 320, 8)] * 10), **{name: float(value) for name, value in WARM_UP.items()}}
    assert central_estimate_ms(full, "short", 320) == pytest.approx(5_100)
    assert central_estimate_ms(full, "short", 40) == pytest.approx(2_000 * 1.5)  # a lone job: not 5.1 s
    assert central_estimate_ms(full, "short", 640) > 5_100  # longer prompts: more, as the warm-up grew
    without_baseline = measure([(5_100, 320, 8)] * 10)
    assert central_estimate_ms(without_baseline, "short", 40) == pytest.approx(5_100)  # nothing to lend it


def test_the_baseline_stands_in_for_a_full_batch_until_the_line_has_a_slope():
    first = {**measure([(2_000, 40, 1)]), **{name: float(value) for name, value in WARM_UP.items()}}
    assert central_estimate_ms(first, "short", 320) == pytest.approx(3_400)  # not the lone job's 2 s
    many = {**measure([(1_000, 40, 1), (1_800, 320, 8)] * 10), **{n: float(v) for n, v in WARM_UP.items()}}
    assert central_estimate_ms(many, "short", 320) == pytest.approx(1_800, abs=50)  # measured wins once it can


def test_a_cold_starts_first_batch_measured_slow_counts_beside_the_baseline_not_instead_of_it():
    # The burst that brought the first batch slowed it (the web answers it on the same cores): 5.1 s
    # against the warm-up's 3.4 s for a full batch. The next batch is judged by both, not by it alone.
    base = {name: float(value) for name, value in WARM_UP.items()}
    first = {**measure([(5_100, 320, 8)]), **base}
    assert central_estimate_ms(first, "short", 320) == pytest.approx((3_400 + 5_100) / 2)
    by_size = batch_central_by_size(SchedulerSettings(max_batch_size=8), first, "short")
    # A job at the second batch's lease with 4.3 s left runs, where the slow batch alone expired it.
    assert not expires(deadline_ms=4_300, now_ms=0, batch_ms=batch_ms_of_size(by_size, 8))
    assert batch_estimate_ms(first, "short", 320) == pytest.approx(2 * 4_250)  # still planned wide
    second = {**measure([(5_100, 320, 8), (3_500, 320, 8)]), **base}
    assert central_estimate_ms(second, "short", 320) == pytest.approx((3_400 + 5_100 + 3_500) / 3)
    # Once the line has its batches, they speak for themselves.
    third = {**measure([(5_100, 320, 8), (3_500, 320, 8), (3_600, 320, 8)]), **base}
    assert central_estimate_ms(third, "short", 320) == pytest.approx((5_100 + 3_500 + 3_600) / 3)


def test_moving_averages_count_their_first_samples_alike_then_favour_the_recent():
    first_slow = measure([(6_000, 320, 8)] + [(3_000, 320, 8)] * 4)
    assert central_estimate_ms(first_slow, "short", 320) == pytest.approx(3_600)  # the mean of five
    assert first_slow["batch_ms:short"] == pytest.approx(3_600)
    settled = measure([(3_000, 320, 8)] * 20 + [(6_000, 320, 8)])
    assert central_estimate_ms(settled, "short", 320) == pytest.approx(3_000 + 0.1 * 3_000)  # LINE_WEIGHT
    assert settled["batch_ms:short"] == pytest.approx(3_000 + 0.2 * 3_000)  # EWMA_WEIGHT


def test_measurements_decay_towards_the_baseline_while_nothing_runs():
    stats: dict[str, str] = {}
    for _ in range(20):  # an overload: every batch took 6 s
        stats.update(updated_measurements(stats, "short", 6_000, tokens=320, jobs=8, now=1_000.0))
    aged = {name: float(value) for name, value in {**stats, **WARM_UP}.items()}
    assert central_estimate_ms({**aged, "now_s": 1_000.0}, "short", 320) == pytest.approx(6_000, abs=1)
    halfway = central_estimate_ms({**aged, "now_s": 1_000.0 + STALE_HALF_LIFE_S}, "short", 320)
    assert halfway == pytest.approx((6_000 + 3_400) / 2, abs=1)
    assert central_estimate_ms({**aged, "now_s": 1_000.0 + 20 * STALE_HALF_LIFE_S}, "short", 320) == pytest.approx(
        3_400, abs=1
    )


def test_the_prior_plans_bigger_models_slower_and_lets_a_cold_node_take_a_default_job():
    small = {name: float(value) for name, value in model_prior(135_000_000, new_tokens=32, batch_size=8).items()}
    big = {name: float(value) for name, value in model_prior(1_700_000_000, new_tokens=32, batch_size=8).items()}
    assert batch_estimate_ms(big, "short") > 10 * batch_estimate_ms(small, "short") > 0
    # The default model (135 M) on two cores: about 3.5 s for a full batch; the prior plans more, within 10 s.
    assert 3_500 < batch_estimate_ms(small, "short") + 60 < 10_000


def test_a_job_that_may_write_more_than_the_lanes_batches_usually_do_is_planned_with_the_steps_past_theirs():
    stats: dict[str, str] = {}
    for _ in range(3):  # batches that decode 40 steps of 25 ms
        stats.update(updated_measurements(stats, "short", 1_200, tokens=320, jobs=8, steps=40, step_ms=25.0))
    measured = {name: float(value) for name, value in stats.items()}
    assert (measured["steps:short"], measured["step_ms:short"]) == (40, 25)
    assert output_extra_ms(measured, "short", 32) == 0  # no more than usual: the line covers it
    assert output_extra_ms(measured, "short", 1_024) == pytest.approx((1_024 - 40) * 25)
    assert output_extra_ms(measured, "long", 1_024) == 0  # nothing known of that lane
    # The moving average follows longer outputs.
    stats.update(updated_measurements(stats, "short", 3_000, tokens=320, jobs=8, steps=120, step_ms=30.0))
    assert float(stats["steps:short"]) == pytest.approx(40 + 0.2 * 80)
    assert float(stats["step_ms:short"]) == pytest.approx(25 + 0.2 * 5)


def test_before_any_batch_the_warm_up_and_the_prior_give_the_steps_and_their_time():
    warm = warm_up_baseline(one=(40, 2_000), full=(320, 3_400), chunk=(256, 640), new_tokens=32)
    base = {name: float(value) for name, value in warm.items()}
    for lane in ("short", "long"):  # a step at the full batch's time per new token: more than it takes
        assert output_extra_ms(base, lane, 132) == pytest.approx(100 * 3_400 / 32)
    assert output_extra_ms({**base, "steps:short": 100.0, "step_ms:short": 20.0}, "short", 132) == 32 * 20  # measured
    prior = {name: float(value) for name, value in model_prior(135_000_000, new_tokens=32, batch_size=8).items()}
    assert output_extra_ms(prior, "short", 1_024) > output_extra_ms(prior, "short", 256) > 0
