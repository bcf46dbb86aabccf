"""The collection of one window: its lane, its wait, its lease."""

import threading
import time

from inference.planning import ARRIVING_WAIT_MS
from inference.scheduler import collect_window
from inference.settings import SchedulerSettings
from inference.store.queue import QueuedJob


def put(queue, *ids, lane="short", tokens=4, deadline_in_ms=60_000):
    for job_id in ids:
        queue.enqueue(QueuedJob(job_id, "p", 4, prompt_tokens=tokens, lane=lane), deadline_in_ms=deadline_in_ms)


def collect(queue, **settings):
    return collect_window(queue, "w1", lambda: SchedulerSettings(**settings))


def test_no_window_opens_while_the_queue_is_empty(queue):
    assert collect(queue) is None


def test_a_lone_job_waits_out_the_window_anchored_at_its_arrival(queue):
    put(queue, 1)
    window = collect(queue, window_ms=80, max_batch_size=8)
    assert [j.job_id for j in window.jobs] == [1]
    assert window.close_reason == "timeout"
    assert window.opened_ms == window.jobs[0].enqueued_ms
    assert queue.now() * 1000 >= window.opened_ms + 80


def hold(queue, lane="short"):
    """A place held as admission holds one for a request it accepts."""
    return queue.admission_view(lane, now=queue.now(), rank=0, hold=True).place


def test_admission_holds_its_place_in_one_round_trip_even_after_redis_lost_its_scripts(queue, redis_round_trips):
    sent = redis_round_trips
    put(queue, 1)
    queue.redis.script_flush()  # as after a Redis restart
    sent.clear()
    first = queue.admission_view("short", now=queue.now(), rank=0, hold=True)  # NOSCRIPT: loaded, read again
    loaded = len(sent)
    sent.clear()
    second = queue.admission_view("short", now=queue.now(), rank=0, hold=True)
    assert first.place and second.place and first.place != second.place
    assert (first.depths["short"], second.depths["short"]) == (1, 2)  # the first one's place counts as waiting
    assert loaded > 1 and len(sent) == 1  # once loaded, no SCRIPT EXISTS before each read


def test_a_window_waits_up_to_one_more_window_for_a_job_being_admitted(queue):
    # Found by bench-phases at a cold start: requests admitted while the window was open queued their jobs
    # after it closed, and were left for a second batch they had no time for.
    put(queue, 1)
    place = hold(queue)
    threading.Timer(0.25, lambda: put(queue, 2)).start()  # the request commits and queues its job late
    window = collect(queue, window_ms=200, max_batch_size=8)
    assert [j.job_id for j in window.jobs] == [1, 2]
    queue.release_place("short", place)


def test_a_held_place_extends_the_window_a_bounded_time(queue):
    put(queue, 1)
    hold(queue)  # a request that never queues its job (it was refused, or its process died)
    window = collect(queue, window_ms=150, max_batch_size=8)
    assert [j.job_id for j in window.jobs] == [1] and window.close_reason == "timeout"
    waited_ms = queue.now() * 1000 - window.opened_ms
    assert 150 + ARRIVING_WAIT_MS <= waited_ms < 1_000


def test_a_full_batch_closes_the_window_early(queue):
    put(queue, *range(1, 11))
    window = collect(queue, window_ms=5000, max_batch_size=4)
    assert [j.job_id for j in window.jobs] == [1, 2, 3, 4]
    assert window.close_reason == "full"  # not "timeout": it did not wait out the 5 s


def test_the_token_budget_closes_the_window_early(queue):
    put(queue, 1, 2, 3, tokens=100)
    window = collect(queue, window_ms=5000, max_batch_size=8, max_batch_tokens=250)
    assert window.close_reason == "tokens"
    assert [j.job_id for j in window.jobs] == [1, 2]  # three would pad to 300 tokens


def test_a_close_deadline_closes_the_window_early(queue):
    put(queue, 1, deadline_in_ms=300)
    window = collect(queue, window_ms=5000)
    assert window.close_reason == "deadline" and [j.job_id for j in window.jobs] == [1]


def test_jobs_arriving_during_the_window_join_it(queue):
    put(queue, 1)
    later = threading.Timer(0.05, put, args=(queue, 2))
    later.start()
    window = collect(queue, window_ms=400, max_batch_size=8)
    later.join()
    assert [j.job_id for j in window.jobs] == [1, 2]


def test_jobs_that_waited_past_their_window_go_together_at_once(queue):
    put(queue, 1, 2, 3)
    time.sleep(0.15)  # as if a batch was running: all three are past their 50 ms window

    def never_sleep(seconds):
        raise AssertionError("a window that closed before the read must not wait")

    window = collect_window(queue, "w1", lambda: SchedulerSettings(window_ms=50), sleep=never_sleep)
    assert [j.job_id for j in window.jobs] == [1, 2, 3]
    assert window.close_reason == "timeout"


def test_a_setting_saved_during_a_window_applies_to_it(queue):
    put(queue, 1)
    current = {"settings": SchedulerSettings(window_ms=10_000)}
    threading.Timer(0.1, lambda: current.update(settings=SchedulerSettings(window_ms=0))).start()
    started = time.monotonic()
    window = collect_window(queue, "w1", lambda: current["settings"])
    assert [j.job_id for j in window.jobs] == [1] and time.monotonic() - started < 2


def test_a_worker_serves_only_its_lanes(queue):
    put(queue, 1, lane="long", tokens=400)
    assert collect_window(queue, "w1", SchedulerSettings, lanes=("short",)) is None
    assert collect_window(queue, "w1", SchedulerSettings, lanes=("long",)).lane == "long"
