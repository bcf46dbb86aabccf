import itertools
import json
import statistics
from types import SimpleNamespace

import pytest

from edgeportal.lab.simulator import (
    Arrival,
    WorkloadError,
    arrivals_draw,
    default_rate,
    percentile,
    prompts_load,
    sequential_vs_batch,
    simulate,
    window_recommend,
    window_summarise,
    window_sweep,
)


class FakeModel:
    """A model on a fake clock: a batch takes `base_ms + per_job_ms * size`, and every call is remembered."""

    def __init__(self, base_ms=500.0, per_job_ms=0.0):
        self.now_s = 0.0
        self.base_ms = base_ms
        self.per_job_ms = per_job_ms
        self.batches: list[list[str]] = []

    def clock(self) -> float:
        return self.now_s

    def generate(self, prompts):
        self.batches.append(list(prompts))
        self.now_s += (self.base_ms + self.per_job_ms * len(prompts)) / 1000
        return [p.upper() for p in prompts]


def at(*arrival_ms, jitter_ms=0.0):
    """Arrivals at these node times, sent `jitter_ms` earlier."""
    return [Arrival(i, ms - jitter_ms, ms, f"p{i}") for i, ms in enumerate(arrival_ms)]


def run(arrivals, model, window_ms, max_batch_size=8):
    return simulate(
        arrivals, window_ms=window_ms, max_batch_size=max_batch_size, generate=model.generate, clock=model.clock
    )


def test_queue_wait_runs_from_arrival_to_batch_start_and_never_includes_inference():
    model = FakeModel(base_ms=500)
    first, second = run(at(0, 10, jitter_ms=50), model, window_ms=0)
    assert (first.batch_start_ms, first.batch_end_ms) == (0, 500)
    assert first.queue_wait_ms == 0 and first.inference_ms == 500
    # The second job arrived while the first ran: it waits until the model is free, then runs alone.
    assert (second.batch_start_ms, second.batch_end_ms) == (500, 1000)
    assert second.queue_wait_ms == 490
    assert second.inference_ms == 500
    assert second.total_ms == 990
    assert second.end_to_end_ms == 1040  # from the send, jitter included


def test_a_window_opens_at_the_first_arrival_and_takes_the_jobs_that_arrive_before_it_closes():
    model = FakeModel(base_ms=100)
    timings = run(at(100, 130, 159, 161), model, window_ms=60)
    assert model.batches == [["p0", "p1", "p2"], ["p3"]]
    assert [t.batch_start_ms for t in timings] == [160, 160, 160, 260]
    assert [t.queue_wait_ms for t in timings] == [60, 30, 1, 99]


def test_a_full_batch_closes_the_window_at_the_arrival_that_fills_it():
    model = FakeModel(base_ms=100)
    timings = run(at(0, 5, 10, 15, 20), model, window_ms=1000, max_batch_size=3)
    assert model.batches == [["p0", "p1", "p2"], ["p3", "p4"]]
    assert timings[0].batch_start_ms == 10
    # The second window opened at 15 and waits its full second: nothing else comes to fill it.
    assert timings[3].batch_start_ms == 1015


def test_jobs_that_arrive_during_a_batch_go_together_once_the_model_is_free():
    model = FakeModel(base_ms=1000)
    timings = run(at(0, 100, 200, 300), model, window_ms=0)
    assert model.batches == [["p0"], ["p1", "p2", "p3"]]
    assert [t.queue_wait_ms for t in timings[1:]] == [900, 800, 700]
    assert {t.batch_size for t in timings[1:]} == {3}


def test_jitter_can_reorder_arrivals_and_the_batcher_follows_arrival_order():
    model = FakeModel(base_ms=10)
    arrivals = [Arrival(0, 0, 190, "late"), Arrival(1, 5, 30, "early")]
    timings = run(arrivals, model, window_ms=0)
    assert model.batches == [["early"], ["late"]]
    assert [t.batch_start_ms for t in timings] == [190, 30]  # results come back in send order


def instant_clock():
    return 0.0  # an instant model: only the windows shape the batches


def test_a_longer_window_makes_larger_batches_from_the_same_arrivals():
    arrivals = arrivals_draw(prompts=["a", "b"], rate_per_s=20, count=40, seed=3)
    short, long = window_sweep(
        arrivals, windows=[0, 250], max_batch_size=8, generate=FakeModel().generate, clock=instant_clock
    )
    assert long.mean_batch_size > short.mean_batch_size
    assert short.jobs == long.jobs == 40


def test_arrivals_are_reproducible_poisson_sends_with_bounded_jitter():
    draw = arrivals_draw(prompts=["x"], rate_per_s=4, count=4000, jitter_ms=(20, 200), seed=7)
    assert draw == arrivals_draw(prompts=["x"], rate_per_s=4, count=4000, jitter_ms=(20, 200), seed=7)
    assert draw != arrivals_draw(prompts=["x"], rate_per_s=4, count=4000, jitter_ms=(20, 200), seed=8)
    jitters = [a.arrival_ms - a.sent_ms for a in draw]
    assert min(jitters) >= 20 and max(jitters) <= 200
    gaps = [b.sent_ms - a.sent_ms for a, b in itertools.pairwise(draw)]
    assert statistics.mean(gaps) == pytest.approx(250, rel=0.05)  # 4 jobs/s
    assert statistics.stdev(gaps) == pytest.approx(250, rel=0.1)  # exponential gaps: stdev equals the mean


def test_arrivals_for_a_duration_stop_sending_at_its_end_and_use_prompts_in_turn():
    draw = arrivals_draw(prompts=["a", "b", "c"], rate_per_s=10, duration_s=2, seed=1)
    assert all(a.sent_ms <= 2000 for a in draw) and len(draw) > 5
    assert [a.prompt for a in draw[:4]] == ["a", "b", "c", "a"]
    with pytest.raises(ValueError, match="exactly one"):
        arrivals_draw(prompts=["a"], rate_per_s=1)


def test_a_window_summary_counts_batches_and_takes_percentiles_of_total_latency():
    model = FakeModel(base_ms=1000)
    result = window_summarise(0, run(at(0, 100, 200, 300), model, window_ms=0))
    assert (result.jobs, result.batches, result.mean_batch_size) == (4, 2, 2.0)
    totals = [1000, 1900, 1800, 1700]
    assert result.p50_ms == percentile(totals, 0.5) == 1750
    assert result.p95_ms == pytest.approx(1885)
    assert result.queue_wait_p95_ms == pytest.approx(885)
    assert result.throughput == pytest.approx(4 / 2.0)  # first arrival at 0, last result at 2000 ms


def test_sequential_vs_batch_times_singles_one_after_another_then_one_batch():
    model = FakeModel(base_ms=100, per_job_ms=50)
    comparison = sequential_vs_batch(["a", "b", "c", "d"], generate=model.generate, clock=model.clock)
    assert model.batches == [["a"], ["b"], ["c"], ["d"], ["a", "b", "c", "d"]]
    assert comparison.sequential_ms == pytest.approx(600)
    assert comparison.batch_ms == pytest.approx(300)
    assert comparison.speedup == pytest.approx(2.0)
    assert comparison.as_dict()["single_mean_ms"] == 150


def test_the_default_rate_slightly_overloads_one_at_a_time_serving():
    assert default_rate(2000) == pytest.approx(0.6)


def point(window_ms, p95_ms, throughput):
    return SimpleNamespace(window_ms=window_ms, p95_ms=p95_ms, throughput=throughput)


def test_the_recommended_window_has_the_best_throughput_among_those_meeting_the_target():
    points = [point(0, 3000, 0.5), point(60, 3500, 0.8), point(120, 4100, 0.9), point(250, 5200, 1.1)]
    assert window_recommend(points, target_p95_ms=4500).window_ms == 120
    assert window_recommend(points, target_p95_ms=3500).window_ms == 60  # meeting it exactly counts
    assert window_recommend(points, target_p95_ms=10_000).window_ms == 250


def test_no_window_is_recommended_when_none_meets_the_target():
    assert window_recommend([point(0, 3000, 0.5), point(60, 3500, 0.8)], target_p95_ms=2999) is None
    assert window_recommend([], target_p95_ms=1000) is None


def test_throughputs_within_two_percent_count_as_equal_and_the_lower_p95_wins():
    points = [point(0, 4446, 0.603), point(60, 3502, 0.58), point(250, 2907, 0.598)]
    assert window_recommend(points, target_p95_ms=8000).window_ms == 250
    assert window_recommend(points, target_p95_ms=8000, tolerance=0).window_ms == 0
    assert window_recommend([point(60, 3000, 1.0), point(20, 3000, 1.0)], target_p95_ms=4000).window_ms == 20


def test_a_workload_file_gives_its_prompts_and_bad_lines_are_named(tmp_path):
    path = tmp_path / "w.jsonl"
    path.write_text(json.dumps({"id": 0, "prompt": "one"}) + "\n\n" + json.dumps({"id": 1, "prompt": "two"}) + "\n")
    assert prompts_load(path) == ["one", "two"]
    path.write_text(json.dumps({"id": 0, "prompt": "one"}) + "\nnot json\n")
    with pytest.raises(WorkloadError, match="line 2"):
        prompts_load(path)
    with pytest.raises(WorkloadError, match="does not exist"):
        prompts_load(tmp_path / "missing.jsonl")
