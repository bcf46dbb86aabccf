"""The planner's rules, called with numbers: no Redis, no model, no clock but the one passed in."""

from dataclasses import dataclass, field

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from inference.batch_time import baseline_fields, batch_estimate_ms, updated_measurements
from inference.lanes import LANES, Lane
from inference.planning import (
    AdmissionView,
    LanePeek,
    admission_rank,
    batch_central_by_size,
    batch_ms_of_size,
    choose_lane,
    effective_window,
    expires,
    long_late_ms,
    long_start_by_ms,
    long_step_ms,
    needs_short_ranks,
    plan_admission,
    refusal,
    running_long_due_ms,
    short_at_risk,
    short_may_go,
    waiting_long_due_ms,
    window_close,
)
from inference.settings import SchedulerSettings
from tests.fuzz.strategies import EXAMPLES, FUZZ


def peek(waiting, deadline_ms, now_ms=0):
    return LanePeek(waiting, 0, deadline_ms, 0, now_ms)


def test_the_short_lane_goes_first_while_the_long_head_has_slack():
    measured = {"batch_ms:short": 1_000, "batch_ms:long": 4_000}
    peeks = {"short": peek(3, 9_000), "long": peek(1, 10_000)}
    assert choose_lane(peeks, measured, window_ms=60) == "short"


def test_the_long_lane_runs_when_one_more_short_batch_would_make_it_miss():
    measured = {"batch_ms:short": 1_000, "batch_ms:long": 4_000}
    peeks = {"short": peek(3, 9_000), "long": peek(1, 4_900)}
    assert choose_lane(peeks, measured, window_ms=60) == "long"


def test_where_long_batches_stand_aside_a_long_job_with_time_to_share_starts_at_once():
    measured = {"batch_ms:short": 1_000, "batch_ms:long": 4_000}
    roomy = {"short": peek(3, 9_000), "long": peek(1, 30_000)}  # 26 s of slack: more than its own 4 s
    assert choose_lane(roomy, measured, window_ms=60, long_stands_aside=True) == "long"
    assert choose_lane(roomy, measured, window_ms=60) == "short"  # in one piece it would hold short jobs up
    tight = {"short": peek(3, 9_000), "long": peek(1, 7_000)}  # 3 s of slack: it would barely stand aside
    assert choose_lane(tight, measured, window_ms=60, long_stands_aside=True) == "short"


def test_long_jobs_waiting_together_start_earlier():
    measured = {"batch_ms:short": 1_000, "batch_ms:long": 4_000}
    assert long_start_by_ms(peek(3, 30_000), measured) == 18_000  # three back to back by the first deadline
    crowded = {"short": peek(3, 9_000), "long": peek(6, 30_000)}  # 30 s - 6 x 4 s leaves 6 s: start now
    assert choose_lane(crowded, {**measured, "batch_ms:short": 6_000}, window_ms=60) == "long"


def test_an_empty_lane_is_never_chosen():
    assert choose_lane({"short": peek(0, 0), "long": peek(2, 1_000_000)}, {}, 60) == "long"
    assert choose_lane({"short": peek(0, 0), "long": peek(0, 0)}, {}, 60) is None


def test_a_batch_is_planned_with_its_average_plus_twice_its_deviation():
    assert batch_estimate_ms({"batch_ms:short": 1_000, "batch_dev_ms:short": 150}, "short") == 1_300
    assert batch_estimate_ms({}, "long") == 0


def test_the_fixed_window_is_the_setting():
    window_ms, why = effective_window(SchedulerSettings(window_ms=60), {}, now_ms=0)
    assert (window_ms, str(why)) == (60, "fixed")


@pytest.mark.parametrize(
    ("gap_ms", "expected_ms", "reason"),
    [
        (500, 0, "would not add a job"),  # sparse arrivals: waiting gains nothing
        (5, 35, "fills a batch in 35 ms"),  # steady load: wait just long enough to fill a batch of 8
        (50, 200, "the maximum window"),
    ],
)
def test_the_adaptive_window_follows_the_arrival_rate(gap_ms, expected_ms, reason):
    settings = SchedulerSettings(window_ms=200, max_batch_size=8, adaptive_window=1)
    measured = {"arrival_gap_ms": gap_ms, "last_arrival_ms": 1_000}
    window_ms, why = effective_window(settings, measured, now_ms=1_001)
    assert window_ms == expected_ms and reason in str(why)


def test_the_adaptive_window_narrows_nothing_once_arrivals_stop():
    settings = SchedulerSettings(window_ms=200, max_batch_size=8, adaptive_window=1)
    measured = {"arrival_gap_ms": 5, "last_arrival_ms": 1_000}
    assert effective_window(settings, measured, now_ms=11_000)[0] == 0  # ten seconds of silence


def test_long_work_counts_for_a_short_job_only_where_it_cannot_wait_past_the_short_deadline():
    measured_long = {"batch_ms:long": 4_000, "batch_dev_ms:long": 0}
    nothing = LanePeek(0, 0, 0, 0, 0)
    by = 100.0  # the short job's batch must start by then (s)
    assert running_long_due_ms([(130.0, 3_000)], by=by) == 0  # 30 s to spare
    assert running_long_due_ms([(101.0, 3_000)], by=by) == 2_000  # 1 s of it after
    assert running_long_due_ms([(90.0, 3_000)], by=by) == 3_000  # all of it before
    assert waiting_long_due_ms(nothing, measured_long, by=by) == 0
    two_waiting = LanePeek(2, 0, 104_000, 0, 0)  # two batches of 4 s, the first due by 104 s
    assert waiting_long_due_ms(two_waiting, measured_long, by=by) == 4_000


def test_short_jobs_may_not_take_the_time_an_accepted_long_job_needs_before_its_deadline():
    measured_long = {"batch_ms:long": 4_000, "batch_dev_ms:long": 0}
    nothing = LanePeek(0, 0, 0, 0, 0)
    plan = {"now_ms": 0, "start_in_ms": 0, "workers": 1, "short_batch": 8, "short_batch_ms": 1_000}
    running = [(6.0, 4_000)]  # 4 s of work left, to finish by 6 s
    # Short batches ranked before 6 s: two batches and the long work fit in 6 s, a third does not.
    assert long_late_ms(running, nothing, measured_long, [1_000] * 7, rank=5_000, **plan) == (0, 0)
    assert long_late_ms(running, nothing, measured_long, [1_000] * 16, rank=5_000, **plan) == (1_000, 6_000)
    # A job ranked after the long job's deadline goes after it; a long job already late is due work instead.
    assert long_late_ms(running, nothing, measured_long, [1_000] * 16, rank=7_000, **plan) == (0, 0)
    assert long_late_ms([(-1.0, 4_000)], nothing, measured_long, [1_000] * 16, rank=-5_000, **plan) == (0, 0)
    # Two long jobs waiting: the worker plans both by the head's deadline (8 s of work by 10 s).
    two_waiting = LanePeek(2, 0, 10_000, 0, 0)
    assert long_late_ms([], two_waiting, measured_long, [1_000] * 8, rank=5_000, **plan) == (0, 0)
    late = long_late_ms([], two_waiting, measured_long, [1_000] * 8 + [9_000] * 8, rank=5_000, **plan)
    assert late == (1_000, 10_000)
    assert long_late_ms(running, two_waiting, measured_long, [], rank=5_000, **plan) == (3_000, 10_000)


# --- invariants over random states -----------------------------------------------------------------
# Each property draws the state a decision reads (measurements after random batches, queues, workers
# busy or idle, long batches in progress) and checks a promise two rules must keep together.

NOW = 1_000_000.0  # Redis clock, s
PROPERTIES = settings(FUZZ, max_examples=max(1, EXAMPLES * 3))


@st.composite
def measurements(draw):
    """A lane's stats as the worker leaves them: a baseline, then a few measured batches (or none)."""
    stats: dict[str, str] = {}
    for lane in LANES:
        if draw(st.booleans()):
            stats.update(baseline_fields(
                lane, ms=draw(st.floats(50, 3_000)), ms_per_token=draw(st.floats(0, 5)),
                tokens=draw(st.integers(16, 2_048)), job_tokens=draw(st.integers(4, 1_024)),
                steps=draw(st.integers(0, 64)), step_ms=draw(st.floats(0, 50)),
            ))  # fmt: skip
        for _ in range(draw(st.integers(0, 6))):
            stats.update(updated_measurements(
                stats, lane, draw(st.floats(20, 20_000)), tokens=draw(st.integers(4, 4_096)),
                jobs=draw(st.integers(1, 8)), now=NOW - draw(st.floats(0, 600)),
                steps=draw(st.none() | st.integers(1, 512)), step_ms=draw(st.none() | st.floats(0, 100)),
            ))  # fmt: skip
    return {**{name: float(value) for name, value in stats.items()}, "now_s": NOW}


@st.composite
def admission_views(draw):
    workers = ["w1", "w2", "w3"][: draw(st.integers(0, 3))]
    serving = {lane: [w for w in workers if draw(st.booleans())] for lane in LANES}
    depths = {lane: draw(st.integers(0, 40) | st.just(0)) for lane in LANES}  # idle lanes often
    long_waiting = depths[Lane.LONG]
    long_head = LanePeek(long_waiting, 0, int(NOW * 1000 + draw(st.integers(-5_000, 120_000))), 0, int(NOW * 1000))
    busy = {w: NOW + draw(st.floats(0, 10)) for w in workers if draw(st.integers(0, 3)) == 0}
    long_runs = {w: (NOW + draw(st.floats(-5, 60)), draw(st.floats(0, 30_000))) for w in serving[Lane.LONG]
                 if draw(st.integers(0, 3)) == 0}  # fmt: skip
    view = AdmissionView(
        now=NOW, depths=depths, ahead=0, measurements=draw(measurements()), serving=serving, busy=busy,
        long_runs=long_runs, long_head=long_head,
    )  # fmt: skip
    ahead = draw(st.integers(0, depths[Lane.SHORT] + depths[Lane.LONG]))
    ranks = sorted(draw(st.lists(st.floats(NOW * 1000 - 5_000, NOW * 1000 + 60_000), max_size=20)))
    return AdmissionView(
        **{**view.__dict__, "ahead": ahead, "short_ranks": ranks if needs_short_ranks(view, Lane.SHORT) else ()}
    )


@PROPERTIES
@given(
    view=admission_views(),
    lane=st.sampled_from(LANES),
    deadline_share=st.floats(0.3, 4),
    tokens=st.integers(0, 2_000),
    window_ms=st.integers(0, 500),
    max_batch_size=st.integers(1, 16),
    max_new_tokens=st.integers(0, 1_024),
)
def test_a_job_the_planner_admits_is_not_expired_by_the_same_planner_at_admission(
    view, lane, deadline_share, tokens, window_ms, max_batch_size, max_new_tokens
):
    config = SchedulerSettings(window_ms=window_ms, max_batch_size=max_batch_size)
    by_size = batch_central_by_size(config, view.measurements, lane)
    # Deadlines around a full batch's time, where admission and expiry could disagree.
    deadline_ms = max(100, int(deadline_share * (max(by_size) + window_ms)))
    rank = admission_rank(view.now, deadline_ms, config.head_start_ms("normal"))
    estimate = plan_admission(
        view, config, lane=lane, deadline_ms=deadline_ms, rank=rank, tokens=tokens, max_new_tokens=max_new_tokens
    )
    admitted = not estimate.misses(deadline_ms) or estimate.probe_fits(deadline_ms)
    if not admitted or estimate.finish_ms is None:
        return
    # At once, in a batch of any size its lane could hold now (the lease judges the batch it would run in).
    now_ms = view.now * 1000
    for jobs in range(1, max_batch_size + 2):
        assert not expires(now_ms + deadline_ms, now_ms, batch_ms_of_size(by_size, jobs))


@PROPERTIES
@given(view=admission_views(), deadline_ms=st.integers(100, 120_000), lane=st.sampled_from(LANES))
def test_the_estimate_is_never_shorter_than_one_window_and_the_retry_is_at_least_a_second(view, deadline_ms, lane):
    config = SchedulerSettings()
    estimate = plan_admission(view, config, lane=lane, deadline_ms=deadline_ms, rank=NOW * 1000 + deadline_ms)
    assert estimate.retry_after_s >= 1
    assert estimate.waiting == sum(view.depths.values())
    if estimate.finish_ms is not None:
        assert estimate.finish_ms >= config.window_ms
        code = refusal(estimate, config, lane=lane, deadline_ms=deadline_ms)
        assert (code is not None) >= estimate.misses(deadline_ms)  # a job that misses is always refused


@PROPERTIES
@given(
    waiting=st.dictionaries(st.sampled_from(LANES), st.integers(0, 5)),
    deadlines=st.lists(st.integers(-1_000, 60_000), min_size=2, max_size=2),
    stats=measurements(),
    stands_aside=st.booleans(),
)
def test_the_lane_chosen_always_has_work_and_an_idle_node_chooses_none(waiting, deadlines, stats, stands_aside):
    peeks = {lane: peek(waiting.get(lane, 0), deadline) for lane, deadline in zip(LANES, deadlines, strict=True)}
    chosen = choose_lane(peeks, stats, 60, long_stands_aside=stands_aside)
    if any(p.waiting for p in peeks.values()):
        assert chosen is not None and peeks[chosen].waiting > 0
    else:
        assert chosen is None


@PROPERTIES
@given(
    waiting=st.integers(1, 16),
    held=st.integers(0, 3),
    age_ms=st.integers(0, 2_000),
    deadline_in_ms=st.integers(0, 20_000),
    batch_ms=st.floats(0, 10_000),
    window_ms=st.integers(0, 500),
)
def test_a_window_never_waits_past_its_bound_nor_into_its_head_jobs_deadline(
    waiting, held, age_ms, deadline_in_ms, batch_ms, window_ms
):
    config = SchedulerSettings(window_ms=window_ms)
    now_ms = 10_000
    lane_peek = LanePeek(waiting, now_ms - age_ms, now_ms + deadline_in_ms, 4 * waiting, now_ms, held)
    reason, closes_ms = window_close(lane_peek, config, Lane.SHORT, opened_ms=now_ms - age_ms,
                                     window_ms=window_ms, batch_ms=batch_ms)  # fmt: skip
    assert closes_ms <= now_ms - age_ms + window_ms + (max(window_ms, 250) if held else 0)
    if reason is None:  # it waits on: there is time for it and its batch before the head's deadline
        assert now_ms < closes_ms and closes_ms + batch_ms <= now_ms + deadline_in_ms
        assert waiting < config.max_batch_size


@dataclass
class Run:
    started: float
    deadline: float
    finish_by: float
    tokens: int
    done_s: float
    measurements: dict = field(default_factory=dict)

    def model_s(self, now: float) -> float:
        return self.done_s


@PROPERTIES
@given(
    long_ms=st.floats(100, 60_000),
    short_ms=st.floats(10, 5_000),
    span_s=st.floats(0.5, 120),
    extra_s=st.floats(0, 60),
    elapsed_fraction=st.floats(0, 1.2),
    done_fraction=st.floats(0, 1),
    at_risk=st.booleans(),
)
def test_a_long_batch_stands_aside_only_when_it_still_finishes_in_time_after_one_short_batch(
    long_ms, short_ms, span_s, extra_s, elapsed_fraction, done_fraction, at_risk
):
    config = SchedulerSettings()
    stats = {"batch_ms:long": long_ms, "batch_dev_ms:long": 0, "batch_ms:short": short_ms, "batch_dev_ms:short": 0}
    elapsed_s = span_s * elapsed_fraction
    run = Run(started=0.0, finish_by=span_s, deadline=span_s + extra_s, tokens=0,
              done_s=elapsed_s * done_fraction, measurements=stats)  # fmt: skip
    if not short_may_go(run, config, now=elapsed_s, short_at_risk=at_risk):
        return
    work_s = batch_estimate_ms(stats, Lane.LONG) / 1000
    one_short_s = (batch_estimate_ms(stats, Lane.SHORT) + config.window_ms) / 1000
    finishes_s = elapsed_s + one_short_s + (work_s - run.done_s)
    assert finishes_s <= (run.deadline if at_risk else run.finish_by) + 1e-6


def test_a_job_expires_only_when_its_batch_started_now_would_end_after_its_deadline():
    assert not expires(10_000, 9_000, 1_000)
    assert expires(10_000, 9_001, 1_000)
    by_size = [500.0, 800.0, 1_000.0]
    assert [batch_ms_of_size(by_size, n) for n in (0, 1, 3, 9)] == [500.0, 500.0, 1_000.0, 1_000.0]
    assert batch_ms_of_size([], 4) == 0.0


def test_a_short_job_waits_for_the_short_ranks_only_where_long_work_shares_its_workers():
    quiet = AdmissionView(now=NOW, depths={"short": 0, "long": 0}, ahead=0, measurements={},
                          serving={"short": ["a"], "long": ["a"]}, busy={}, long_runs={},
                          long_head=LanePeek(0, 0, 0, 0, 0))  # fmt: skip
    assert not needs_short_ranks(quiet, Lane.SHORT)
    assert needs_short_ranks(AdmissionView(**{**quiet.__dict__, "long_runs": {"a": (NOW + 5, 1_000)}}), Lane.SHORT)
    apart = {**quiet.__dict__, "serving": {"short": ["a"], "long": ["b"]}, "long_runs": {"b": (NOW + 5, 1_000)}}
    assert not needs_short_ranks(AdmissionView(**apart), Lane.SHORT)
    assert not needs_short_ranks(AdmissionView(**{**quiet.__dict__, "long_runs": {"a": (NOW, 1)}}), Lane.LONG)


def test_admission_refuses_a_full_queue_before_anything_else():
    config = SchedulerSettings(queue_limit=4)
    full = AdmissionView(now=NOW, depths={"short": 4, "long": 0}, ahead=4, measurements={},
                         serving={"short": [], "long": []}, busy={}, long_runs={},
                         long_head=LanePeek(0, 0, 0, 0, 0))  # fmt: skip
    estimate = plan_admission(full, config, lane=Lane.SHORT, deadline_ms=10_000, rank=NOW * 1000)
    assert refusal(estimate, config, lane=Lane.SHORT, deadline_ms=10_000)[0] == "queue_full"


@pytest.mark.parametrize("priority", ["high", "normal", "low"])
def test_a_higher_priority_ranks_earlier_by_its_head_start(priority):
    config = SchedulerSettings()
    assert admission_rank(NOW, 10_000, config.head_start_ms(priority)) == NOW * 1000 + 10_000 - getattr(
        config, f"priority_weight_{priority}_ms"
    )


def test_a_jobs_own_batch_is_planned_for_its_output_limit_and_so_is_its_probe():
    stats = {
        **baseline_fields(Lane.SHORT, ms=1_000, ms_per_token=0, tokens=320, job_tokens=40, steps=32, step_ms=20),
        **updated_measurements({}, Lane.SHORT, 1_000, tokens=320, jobs=8, steps=32, step_ms=20.0),
    }
    view = AdmissionView(
        now=NOW, depths={Lane.SHORT: 0, Lane.LONG: 0}, ahead=0, measurements={n: float(v) for n, v in stats.items()},
        serving={Lane.SHORT: ["w1"], Lane.LONG: []}, busy={}, long_runs={}, long_head=LanePeek(0, 0, 0, 0, 0),
    )  # fmt: skip
    config = SchedulerSettings()

    def plan(max_new_tokens):
        return plan_admission(view, config, lane=Lane.SHORT, deadline_ms=10_000, rank=NOW * 1000 + 10_000,
                              tokens=40, max_new_tokens=max_new_tokens)  # fmt: skip

    usual, long_output = plan(32), plan(232)
    assert long_output.finish_ms == pytest.approx(usual.finish_ms + 200 * 20)
    assert long_output.probe_finish_ms == pytest.approx(usual.probe_finish_ms + 200 * 20 * 1.1)  # with its margin
    # A deadline that a usual job keeps refuses one that may write 1 024 tokens (about 20 s of decoding).
    assert not plan(32).misses(10_000) and plan(1_024).misses(10_000) and not plan(1_024).probe_fits(10_000)
    refused = refusal(plan(1_024), config, lane=Lane.SHORT, deadline_ms=10_000)
    assert refused is not None and refused.code == "deadline_unreachable"


@PROPERTIES
@given(view=admission_views(), lane=st.sampled_from(LANES), more=st.integers(0, 1_024), base=st.integers(1, 256))
def test_a_job_allowed_a_longer_output_is_never_planned_to_finish_sooner(view, lane, more, base):
    config = SchedulerSettings()

    def plan(max_new_tokens):
        return plan_admission(view, config, lane=lane, deadline_ms=30_000, rank=NOW * 1000 + 30_000,
                              max_new_tokens=max_new_tokens)  # fmt: skip

    short, longer = plan(base), plan(base + more)
    rounding = 1e-6  # ms: times are seconds on a clock near 1e6 s, multiplied back to ms
    if short.finish_ms is not None:
        assert longer.finish_ms >= short.finish_ms - rounding
    if short.probe_finish_ms is not None:
        assert longer.probe_finish_ms >= short.probe_finish_ms - rounding


def test_a_short_job_plans_to_wait_for_the_end_of_the_long_step_its_worker_may_be_in():
    stats = {"batch_ms:long": 4_000, "batch_dev_ms:long": 0, "job_tokens:long": 1_024,
             "batch_ms:short": 1_000, "batch_dev_ms:short": 0, "job_tokens:short": 40}  # fmt: skip
    config = SchedulerSettings(long_chunk_tokens=256, window_ms=60)
    assert long_step_ms(config, stats) == 1_000  # a quarter of the long lane's usual batch
    assert long_step_ms(SchedulerSettings(long_chunk_tokens=0), stats) == 0  # in one piece: busy says it
    assert long_step_ms(config, {"batch_ms:long": 4_000}) == 0  # no long job measured yet
    idle = AdmissionView(now=NOW, depths={"short": 0, "long": 0}, ahead=0, measurements=stats,
                         serving={"short": ["a"], "long": ["a"]}, busy={}, long_runs={},
                         long_head=LanePeek(0, 0, 0, 0, 0))  # fmt: skip
    running = AdmissionView(**{**idle.__dict__, "long_runs": {"a": (NOW + 60, 3_000.0)}})
    waiting = AdmissionView(
        **{
            **idle.__dict__,
            "depths": {"short": 0, "long": 1},
            "long_head": LanePeek(1, 0, int(NOW * 1000) + 60_000, 1_024, int(NOW * 1000)),
        }
    )
    apart = AdmissionView(**{**running.__dict__, "serving": {"short": ["a"], "long": ["b"]},
                             "long_runs": {"b": (NOW + 60, 3_000.0)}})  # fmt: skip

    def finish_ms(view):
        return plan_admission(view, config, lane=Lane.SHORT, deadline_ms=10_000, rank=NOW * 1000 + 10_000).finish_ms

    assert finish_ms(running) == pytest.approx(finish_ms(idle) + 1_000)  # its long batch is in a step
    assert finish_ms(waiting) == pytest.approx(finish_ms(idle) + 1_000)  # it may start one any moment
    assert finish_ms(apart) == pytest.approx(finish_ms(idle))  # the long batch runs on another worker


def test_a_short_job_is_at_risk_a_long_step_before_it_must_start():
    stats = {"batch_ms:long": 8_000, "batch_dev_ms:long": 0, "job_tokens:long": 1_024,
             "batch_ms:short": 1_000, "batch_dev_ms:short": 0}  # fmt: skip
    config = SchedulerSettings(long_chunk_tokens=256, window_ms=0)  # a step of 2 s

    def head(left_ms):  # the head job's time left, past a short batch
        return LanePeek(1, 0, 1_000 + left_ms, 0, 0)

    assert short_at_risk(head(1_999), config, stats) and not short_at_risk(head(2_000), config, stats)
    quick = {**stats, "batch_ms:long": 2_000}  # a step of 0.5 s: still a second's notice
    assert short_at_risk(head(999), config, quick) and not short_at_risk(head(1_000), config, quick)


def test_a_long_step_is_a_chunk_of_the_prefill_for_each_row_or_one_decoding_step():
    config = SchedulerSettings(long_chunk_tokens=256, long_batch_tokens=1_024)
    # Long prompts: 4 s of a 1 024-token batch is prefill but 32 steps of 25 ms; a step is a quarter of it.
    prompts = {"batch_ms:long": 4_800, "batch_dev_ms:long": 0, "job_tokens:long": 1_024,
               "steps:long": 32, "step_ms:long": 25}  # fmt: skip
    assert long_step_ms(config, prompts) == pytest.approx(1_000)
    # Long outputs: a 50-token prompt that writes 512 tokens reads its prompt in one short step; then steps
    # of 28 ms. Planned by the whole batch, the step would be 15 s, and refuse every short job beside it.
    outputs = {"batch_ms:long": 15_000, "batch_dev_ms:long": 0, "job_tokens:long": 50,
               "steps:long": 512, "step_ms:long": 28}  # fmt: skip
    assert long_step_ms(config, outputs) == pytest.approx(15_000 - 512 * 28)  # all of its prefill
    assert long_step_ms(config, {**outputs, "steps:long": 540}) == 28  # the measured decoding is all of it
    # Four 256-token prompts in a batch: each step reads a chunk of each, the whole prefill of the four.
    four = {"batch_ms:long": 4_000, "batch_dev_ms:long": 0, "job_tokens:long": 256}
    assert long_step_ms(config, four) == pytest.approx(4_000)
    # With the lane's margin: twice the deviation over the central time.
    assert long_step_ms(config, {**prompts, "batch_dev_ms:long": 600}) == pytest.approx(1_000 * 6_000 / 4_800)


def test_a_short_job_waits_for_a_long_step_or_for_the_long_work_due_not_for_both():
    stats = {"batch_ms:long": 4_000, "batch_dev_ms:long": 0, "job_tokens:long": 1_024,
             "batch_ms:short": 1_000, "batch_dev_ms:short": 0, "job_tokens:short": 40}  # fmt: skip
    config = SchedulerSettings(long_chunk_tokens=256, window_ms=60)  # a step of 1 s
    view = AdmissionView(now=NOW, depths={"short": 0, "long": 0}, ahead=0, measurements=stats,
                         serving={"short": ["a"], "long": ["a"]}, busy={}, long_runs={"a": (NOW + 5.1, 4_000.0)},
                         long_head=LanePeek(0, 0, 0, 0, 0))  # fmt: skip

    def plan(chunk):
        return plan_admission(view, SchedulerSettings(long_chunk_tokens=chunk, window_ms=60), lane=Lane.SHORT,
                              deadline_ms=4_000, rank=NOW * 1000 + 4_000)  # fmt: skip

    # 4 s of long work left, to finish by 5.1 s: a short job due in 4 s must start by 2.94 s, so 1.84 s of
    # that work comes first, more than a step. It waits for that, not for a step more, and leaves the long
    # batch its time (0.06 s window, 1 s short batch and 4 s of long work end by 5.1 s).
    stepped, in_one_piece = plan(256), plan(0)
    assert stepped.finish_ms == pytest.approx(in_one_piece.finish_ms) == pytest.approx(60 + 1_000 + 1_840)
    assert refusal(stepped, config, lane=Lane.SHORT, deadline_ms=4_000) is None
