import threading
import time

import pytest

from inference.queue import QueuedJob
from inference.scheduler import SchedulerSettings, SettingError, SettingsStore, collect_window, parse_setting


def put(queue, *ids):
    for job_id in ids:
        queue.enqueue(QueuedJob(job_id=job_id, prompt="p", max_new_tokens=4))


def test_no_window_opens_while_the_queue_is_empty(queue):
    queue.ensure_group()
    assert collect_window(queue, "w1", SchedulerSettings, idle_block_ms=50) is None


def test_a_lone_job_waits_out_the_window_anchored_at_its_arrival(queue):
    put(queue, 1)
    window = collect_window(queue, "w1", lambda: SchedulerSettings(window_ms=80, max_batch_size=8))
    assert [j.job_id for j in window.jobs] == [1]
    assert window.close_reason == "timeout"
    assert window.opened_ms == window.jobs[0].arrived_ms
    assert window.closed_at * 1000 >= window.opened_ms + 80


def test_a_full_batch_closes_the_window_early(queue):
    put(queue, *range(1, 11))
    window = collect_window(queue, "w1", lambda: SchedulerSettings(window_ms=5000, max_batch_size=4))
    assert [j.job_id for j in window.jobs] == [1, 2, 3, 4]
    assert window.close_reason == "full"


def test_jobs_arriving_during_the_window_join_it(queue):
    put(queue, 1)
    later = threading.Timer(0.05, put, args=(queue, 2))
    later.start()
    window = collect_window(queue, "w1", lambda: SchedulerSettings(window_ms=400, max_batch_size=8))
    later.join()
    assert [j.job_id for j in window.jobs] == [1, 2]


def test_the_window_is_anchored_at_arrival_not_at_the_read(queue):
    put(queue, 1)
    [job] = queue.redis.xrange(queue.stream)
    arrived = int(job[0].split("-")[0]) / 1000

    def never_sleep(seconds):
        raise AssertionError("a window that closed before the read must not wait")

    # Read 100 ms after arrival with a 50 ms window: the window is already over.
    window = collect_window(
        queue, "w1", lambda: SchedulerSettings(window_ms=50), clock=lambda: arrived + 0.1, sleep=never_sleep
    )
    assert [j.job_id for j in window.jobs] == [1] and window.close_reason == "timeout"


def test_jobs_that_waited_past_their_window_go_together_at_once(queue):
    put(queue, 1, 2, 3)
    time.sleep(0.15)  # as if a batch was running: all three are past their 50 ms window
    window = collect_window(queue, "w1", lambda: SchedulerSettings(window_ms=50, max_batch_size=8))
    assert [j.job_id for j in window.jobs] == [1, 2, 3]
    assert window.close_reason == "timeout"


@pytest.mark.parametrize(
    ("name", "raw", "message"),
    [
        ("window_ms", "-1", "between 0 and 10000"),
        ("window_ms", "soon", "must be an integer"),
        ("max_batch_size", "0", "between 1 and 256"),
        ("colour", "1", "unknown setting"),
    ],
)
def test_bad_settings_are_refused_with_a_clear_message(name, raw, message):
    with pytest.raises(SettingError, match=message):
        parse_setting(name, raw)


def test_settings_come_from_the_environment():
    settings = SchedulerSettings.from_env({"EDGE_WINDOW_MS": "25", "EDGE_MAX_BATCH_SIZE": "16"})
    assert settings == SchedulerSettings(window_ms=25, max_batch_size=16)
    with pytest.raises(SettingError, match=r"EDGE_WINDOW_MS|window_ms"):
        SchedulerSettings.from_env({"EDGE_WINDOW_MS": "fast"})


def test_live_overrides_in_redis_apply_and_bad_stored_values_are_ignored(queue):
    store = SettingsStore(queue, SchedulerSettings(window_ms=60, max_batch_size=8))
    store.update(window_ms=10)
    assert store.current() == SchedulerSettings(window_ms=10, max_batch_size=8)
    queue.redis.hset(store.key, "max_batch_size", "lots")
    assert store.current().max_batch_size == 8
    with pytest.raises(SettingError):
        store.update(max_batch_size=0)
