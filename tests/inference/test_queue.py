import time

from inference.queue import QueuedJob


def job(job_id, prompt="p"):
    return QueuedJob(job_id=job_id, prompt=prompt, max_new_tokens=4)


def test_enqueued_jobs_are_read_in_order_and_marked_live(queue):
    for i in (1, 2, 3):
        queue.enqueue(job(i))
    assert queue.live_job_ids() == {1, 2, 3}
    read = queue.read_new("w1", 10)
    assert [j.job_id for j in read] == [1, 2, 3]
    assert queue.read_new("w1", 10) == []  # delivered once to the group


def test_ack_removes_jobs_from_stream_and_live_set(queue):
    queue.enqueue(job(1))
    queue.enqueue(job(2))
    read = queue.read_new("w1", 10)
    queue.ack(read[:1])
    assert queue.live_job_ids() == {2}
    assert queue.redis.xlen(queue.stream) == 1
    assert queue.depth() == 1


def test_a_dead_consumer_rereads_its_unacknowledged_jobs_with_rising_delivery_count(queue):
    queue.enqueue(job(7, "hello"))
    queue.read_new("w1", 10)  # ...and the worker dies here
    again = queue.read_own_pending("w1", 10)
    assert [(j.job_id, j.prompt, j.deliveries) for j in again] == [(7, "hello", 2)]
    assert queue.read_own_pending("w2", 10) == []  # other consumers do not see it


def test_idle_jobs_of_another_consumer_are_reclaimed(queue):
    queue.enqueue(job(1))
    queue.read_new("gone", 10)
    assert queue.reclaim_idle("alive", min_idle_ms=60_000, count=10) == []  # not idle long enough
    reclaimed = queue.reclaim_idle("alive", min_idle_ms=0, count=10)
    assert [j.job_id for j in reclaimed] == [1]
    assert reclaimed[0].deliveries == 2


def test_bury_moves_a_job_to_the_dead_letter_stream(queue):
    queue.enqueue(job(5))
    [read] = queue.read_new("w1", 1)
    queue.bury(read, "crashed three times")
    [(_, fields)] = queue.redis.xrange(queue.dead)
    assert fields["job_id"] == "5" and fields["reason"] == "crashed three times"
    assert queue.live_job_ids() == set()


def test_reading_recreates_the_group_after_redis_lost_its_data(queue):
    queue.enqueue(job(1))
    queue.redis.delete(queue.stream)
    assert queue.read_new("w1", 10) == []
    queue.enqueue(job(2))
    assert [j.job_id for j in queue.read_new("w1", 10)] == [2]


def test_arrival_time_comes_from_the_entry_id(queue):
    queue.enqueue(job(1))
    [read] = queue.read_new("w1", 1)
    server_ms = int(queue.redis.time()[0]) * 1000
    assert abs(read.arrived_ms - server_ms) < 2000


def test_touching_jobs_in_flight_keeps_them_from_being_reclaimed(queue):
    queue.enqueue(job(1))
    read = queue.read_new("busy", 10)
    time.sleep(0.2)
    queue.touch("busy", read)
    assert queue.reclaim_idle("other", min_idle_ms=150, count=10) == []
    [pending] = queue.redis.xpending_range(queue.stream, "workers", min="-", max="+", count=10)
    assert pending["times_delivered"] == 1  # touching is not a delivery


def test_the_clock_offset_to_redis_is_measured(queue):
    queue.sync_clock()
    server = queue.redis.time()
    assert abs(queue.now() - (server[0] + server[1] / 1e6)) < 0.5
