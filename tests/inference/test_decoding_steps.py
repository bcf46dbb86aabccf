"""What a batch tells admission about its output: its decoding steps and the time of one (plain function)."""

import pytest

from inference.batch import BatchRun
from inference.generation import BatchOutput, Generation
from inference.settings import SchedulerSettings
from inference.worker import decoding_steps


def batch(*, first_token_after_s=0.2, model_s=1.2, paused_ms=0.0) -> BatchRun:
    run = BatchRun("b", "w", [], SchedulerSettings(), "short", 60, 0.0, inference_started_at=100.0)
    run.inference_ended_at = 100.0 + model_s + paused_ms / 1000
    run.first_token_at = None if first_token_after_s is None else 100.0 + first_token_after_s
    run.paused_ms = paused_ms
    return run


def output(new_tokens: int, *, cached: dict | None = None) -> BatchOutput:
    return BatchOutput([Generation("text", 10, new_tokens, cached=cached)], 10, 0.0)


def test_the_longest_output_sets_the_steps_and_the_rest_of_the_batch_their_time():
    steps, step_ms = decoding_steps(batch(), [output(11), output(4), "inference failed: boom"])
    assert steps == 11 and step_ms == pytest.approx((1_200 - 200) / 10)


def test_an_answer_of_the_semantic_cache_is_no_step_of_the_model():
    steps, _ = decoding_steps(batch(), [output(11), output(300, cached={"similarity": 0.97})])
    assert steps == 11
    assert decoding_steps(batch(), [output(300, cached={"similarity": 0.97})]) == (None, None)


@pytest.mark.parametrize(
    "run", [batch(first_token_after_s=None), batch(paused_ms=500.0)], ids=["no first token", "paused"]
)
def test_without_a_clean_measure_the_steps_count_and_their_time_does_not(run):
    assert decoding_steps(run, [output(11)]) == (11, None)
    assert decoding_steps(batch(), [output(1)]) == (1, None)  # one step: nothing after the first
