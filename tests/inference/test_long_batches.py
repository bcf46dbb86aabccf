"""LongBatches: the long batch in steps, the one owner of what the batch thread and the timer share."""

import time

import redis

from inference.generation import BatchOutput
from inference.long_batches import LongBatches, LongRun
from inference.settings import SchedulerSettings
from inference.store.queue import QueuedJob

SETTINGS = SchedulerSettings()
# A long batch of 10 s planned, 60 s to finish it in: ahead of its pace from the start, it stands aside.
ROOMY = {"batch_ms:long": 10_000, "batch_dev_ms:long": 0, "batch_ms:short": 500, "batch_dev_ms:short": 0}


def steps(count: int, done: list):
    """A long batch's steps as a model yields them: the output comes with the last."""
    for step in range(count):
        done.append(step)
        yield
    return BatchOutput([], 0, 1.0)


def test_short_batches_run_between_steps_while_short_jobs_wait_and_count_as_paused(queue):
    batches, done, shorts = LongBatches("w1"), [], []
    # Five seconds of its ten done, a minute to go: well ahead of its pace, whatever a slow machine adds.
    run = LongRun(deadline=time.time() + 60, measurements=ROOMY, tokens=1_000, started=time.time() - 5)

    def run_short() -> bool:
        shorts.append(len(done))
        time.sleep(0.01)
        return len(shorts) < 3  # two short batches, then the short lane is empty

    batches.short_waiting.set()  # as the timer sets it
    output = batches.run_in_steps(queue, run, steps(4, done), settings=lambda: SETTINGS, run_short=run_short)
    assert output.inference_ms == 1.0 and done == [0, 1, 2, 3]
    assert shorts == [0, 0, 0]  # before the first step: two batches, then one that found none
    assert not batches.short_waiting.is_set()  # an empty short lane: the long batch runs on
    assert run.paused_s >= 0.03 and run.paused_since is None
    assert queue.redis.hget(queue.long_runs_key, "w1") is None  # it ended: admission no longer counts it


def test_short_jobs_waiting_as_a_long_batch_starts_go_before_its_first_step(queue):
    """A step (a prefill chunk) may take a second: jobs already waiting do not wait for it, nor for the
    timer's next look at the short lane."""
    batches, done, shorts = LongBatches("w1"), [], []
    run = LongRun(deadline=time.time() + 60, measurements=ROOMY, tokens=1_000)
    queue.enqueue(QueuedJob(1, "p", 4, prompt_tokens=4), deadline_in_ms=30_000)

    def run_short() -> bool:
        shorts.append(len(done))
        return len(shorts) < 2

    batches.run_in_steps(queue, run, steps(3, done), settings=lambda: SETTINGS, run_short=run_short)
    assert shorts == [0, 0] and done == [0, 1, 2]


def test_a_failing_short_batch_lets_the_long_batch_finish_without_standing_aside_again(queue):
    batches, done, shorts = LongBatches("w1"), [], []
    run = LongRun(deadline=time.time() + 60, measurements=ROOMY, tokens=1_000)

    def run_short() -> bool:
        shorts.append(1)
        raise redis.ConnectionError("Redis went away")

    batches.short_waiting.set()
    batches.run_in_steps(queue, run, steps(3, done), settings=lambda: SETTINGS, run_short=run_short)
    assert done == [0, 1, 2] and shorts == [1] and run.may_pause is False


def test_the_timer_publishes_the_running_batch_and_clears_what_a_lost_redis_left(queue):
    batches = LongBatches("w1")
    run = LongRun(deadline=time.time() + 60, measurements=ROOMY, tokens=1_000)
    batches.begin(queue, run)
    finish_by, left_ms = map(float, queue.redis.hget(queue.long_runs_key, "w1").split(","))
    assert left_ms > 9_000 and finish_by > queue.now() + 50  # 10 s planned, hardly begun, due in a minute
    queue.enqueue(QueuedJob(1, "p", 4, prompt_tokens=4), deadline_in_ms=500)  # a short job about to expire
    batches.observe(queue, SETTINGS)
    assert batches.short_waiting.is_set() and batches.short_at_risk.is_set()
    batches.end(queue, run)
    queue.set_long_run("w1", 0.0, 1_000.0)  # as if Redis had refused the end of the run...
    batches._left = True
    batches.observe(queue, SETTINGS)
    assert queue.redis.hget(queue.long_runs_key, "w1") is None  # ...cleared by the next tick


class ShortLaneUnseen:
    """The real queue, with Redis refusing the first look at the short lane (as a long batch starts)."""

    def __init__(self, queue):
        self.queue, self.refused = queue, False

    def __getattr__(self, name):
        return getattr(self.queue, name)

    def peek(self, lane, count):
        if lane == "short" and not self.refused:
            self.refused = True
            raise redis.ConnectionError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")
        return self.queue.peek(lane, count)


def test_a_long_batch_whose_first_look_at_the_short_lane_fails_runs_on(queue):
    batches, done = LongBatches("w1"), []
    run = LongRun(deadline=time.time() + 60, measurements=ROOMY, tokens=1_000)
    output = batches.run_in_steps(
        ShortLaneUnseen(queue), run, steps(3, done), settings=lambda: SETTINGS, run_short=lambda: False
    )
    assert output.inference_ms == 1.0 and done == [0, 1, 2]
