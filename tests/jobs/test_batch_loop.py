"""The worker's steps called directly, with the tiny model, the real Redis and the database sink."""

import json
import threading
import time
from datetime import timedelta

import pytest
import redis
from django.db import OperationalError, connection

from edgeportal.core.queueing import get_settings_store
from edgeportal.jobs import services
from edgeportal.jobs.entry import job_submit
from edgeportal.jobs.models import Job
from edgeportal.jobs.services import jobs_requeue_lost
from edgeportal.jobs.sink import DatabaseSink
from edgeportal.latency.models import BatchRecord
from inference.decoding import Decoding
from inference.generation import GenerationParams
from inference.long_batches import LongRun
from inference.runtime import TransformersEngine
from inference.scheduler import collect_window
from inference.settings import SchedulerSettings
from inference.store.queue import JobQueue, SettingsStore
from inference.warm_up import LOG_LINE, measure_baseline, run_beside
from inference.worker import GIVE_UP_AFTER_S, StorageUnavailable
from inference.worker_threads import HEARTBEAT_EVERY_S, retry_delay_s, timer_forever
from tests.conftest import make_template
from tests.integration.workers import wait_until

# Real commits, as in the worker: the sink refreshes its database connection between batches.
pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def submit():
    def submit(prompt="Describe the dent on plate 4."):
        return job_submit(prompt=prompt, allow_free_prompt=True)

    return submit


def test_batch_step_runs_waiting_jobs_in_one_batch_and_records_latency(submit, make_worker):
    jobs = [submit(f"Prompt number {i}") for i in range(3)]
    assert make_worker().batch_step() is True
    batches = BatchRecord.objects.all()
    assert batches.count() == 1
    assert batches[0].size == 3 and batches[0].window_ms == 30 and batches[0].max_batch_size == 4
    for job in jobs:
        job.refresh_from_db()
        assert job.status == Job.Status.DONE
        assert job.batch == batches[0]
        assert job.output_tokens > 0 and job.prompt_tokens > 0
        assert job.created_at <= job.picked_at <= job.inference_started_at <= job.inference_ended_at <= job.finished_at
        assert job.latency.batch_size == 3
        assert job.latency.total_ms >= job.latency.inference_ms


def test_a_batch_measures_its_decoding_steps_and_the_time_of_one(submit, make_worker, queue):
    jobs = [submit(f"Prompt number {i}") for i in range(3)]
    make_worker().batch_step()
    longest = max(Job.objects.get(pk=job.pk).output_tokens for job in jobs)
    measured = queue.measurements()
    assert measured["steps:short"] == longest > 1
    batch = BatchRecord.objects.get()
    # A step after the first: less than the batch's time shared among its steps, never nothing.
    assert 0 < measured["step_ms:short"] < batch.inference_ms / (longest - 1)


def test_batch_step_respects_max_batch_size(submit, make_worker):
    for i in range(6):
        submit(f"Prompt {i}")
    worker = make_worker()
    worker.batch_step()
    worker.batch_step()
    assert sorted(BatchRecord.objects.values_list("size", flat=True)) == [2, 4]


def take_and_die(queue):
    """Lease a window as worker w-test would, then "die" before running it."""
    return collect_window(queue, "w-test", lambda: SchedulerSettings(window_ms=0))


def forget_everything(queue):
    """Redis restarted without persistence."""
    queue.redis.delete(*queue.redis.scan_iter(f"{queue.prefix}:*"))


def test_a_restarting_worker_runs_the_jobs_it_had_taken(submit, make_worker, queue):
    job = submit()
    take_and_die(queue)
    worker = make_worker()
    worker.recover_step()
    assert worker.batch_step() is True
    job.refresh_from_db()
    assert job.status == Job.Status.DONE
    assert queue.live_job_ids() == set()


def test_a_job_that_kills_every_worker_ends_failed_and_buried(submit, make_worker, queue):
    job = submit()
    for _ in range(3):  # three attempts, each "crashing" the worker
        take_and_die(queue)
        queue.reclaim(worker="w-test")
    make_worker(max_deliveries=3).batch_step()
    job.refresh_from_db()
    assert job.status == Job.Status.FAILED
    assert "gave up after 3 attempts" in job.error
    assert queue.redis.xlen(queue.dead) == 1


class ModelFailingOn(TransformersEngine):
    """The tiny model, except that any batch containing a given prompt raises."""

    def __init__(self, model: TransformersEngine, bad_prompt: str):
        super().__init__(model.model, model.tokenizer, identity=model.identity)
        self.bad_prompt = bad_prompt

    def generate_batch(self, prompts, *args, **kwargs):
        if self.bad_prompt in prompts:
            raise RuntimeError("out of memory")
        return super().generate_batch(prompts, *args, **kwargs)


def test_a_model_error_fails_only_the_bad_job_and_the_worker_goes_on(submit, make_worker, tiny_model):
    good, bad = submit("a good prompt"), submit("a bad prompt")
    make_worker(model=ModelFailingOn(tiny_model, "a bad prompt")).batch_step()
    good.refresh_from_db()
    bad.refresh_from_db()
    assert good.status == Job.Status.DONE
    assert bad.status == Job.Status.FAILED
    assert bad.error == "inference failed: RuntimeError: out of memory"
    assert bad.latency.status == "failed" and bad.latency.total_ms > 0
    assert good.batch == bad.batch and good.batch.size == 2


class RecordingModel(TransformersEngine):
    """The tiny model, remembering the prompts of every generate call."""

    def __init__(self, model: TransformersEngine):
        super().__init__(model.model, model.tokenizer, identity=model.identity)
        self.calls = []

    def generate_batch(self, prompts, *args, **kwargs):
        self.calls.append(list(prompts))
        return super().generate_batch(prompts, *args, **kwargs)


class RedisGoneAfterInference(JobQueue):
    """The real queue, with Redis gone at the first write after the model ran (the batch's measurement)."""

    def __init__(self, queue: JobQueue):
        super().__init__(queue.redis, queue.prefix, base=queue.base, pool=queue.pool)
        self.gone = True

    def record_batch_time(self, *args, **kwargs):
        if self.gone:
            self.gone = False
            raise redis.ConnectionError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")
        super().record_batch_time(*args, **kwargs)


def test_redis_lost_right_after_inference_never_runs_the_model_again(submit, make_worker, queue, tiny_model):
    job = submit()
    model = RecordingModel(tiny_model)
    worker = make_worker(model=model)
    worker.queue = RedisGoneAfterInference(queue)
    for _ in range(3):
        try:
            worker.step()
        except redis.ConnectionError:
            pass  # run_forever waits and steps again
    job.refresh_from_db()
    assert job.status == Job.Status.DONE and job.output_tokens > 0
    assert model.calls == [[job.prompt]]  # one run: the outputs existed, a lost measurement is no reason to rerun


def test_jobs_that_crashed_a_worker_before_run_one_by_one(submit, make_worker, queue, tiny_model):
    first, second = submit("first"), submit("second")
    take_and_die(queue)
    model = RecordingModel(tiny_model)
    worker = make_worker(model=model)
    worker.recover_step()
    worker.batch_step()
    assert model.calls == [["first"], ["second"]]
    assert {j.latency.batch_size for j in Job.objects.filter(pk__in=[first.pk, second.pk])} == {2}
    assert {j.status for j in Job.objects.filter(pk__in=[first.pk, second.pk])} == {Job.Status.DONE}


def locked(execute, sql, params, many, context):
    raise OperationalError("database is locked")


class FlakySink(DatabaseSink):
    """The database sink, with the database locked for the first `outages` writes of results."""

    def __init__(self, outages: int):
        self.outages = outages

    def batch_finished(self, batch):
        if not self.outages:
            return super().batch_finished(batch)
        self.outages -= 1
        with connection.execute_wrapper(locked):  # every query of this write answers "database is locked"
            return super().batch_finished(batch)


def runs_measured(queue, lane="short"):
    """How many batches the model ran in the lane: each one adds a point to the lane's line."""
    return int(queue.measurements().get(f"line:{lane}:n", 0))


def test_a_database_outage_never_runs_the_model_again_and_never_loses_the_output(submit, make_worker, queue):
    job = submit()
    worker = make_worker()
    worker.sink = FlakySink(outages=8)
    for _ in range(8):
        with pytest.raises(StorageUnavailable):
            worker.step()
        worker.retrying_since = time.time() - 2 * GIVE_UP_AFTER_S  # as if the outage had lasted minutes
    assert worker.step() is True  # the database answers again: the kept output is stored
    job.refresh_from_db()
    assert job.status == Job.Status.DONE and job.output_tokens > 0
    assert runs_measured(queue) == 1  # the model ran once
    assert queue.live_job_ids() == set() and worker.in_flight == []


def test_outputs_kept_in_redis_are_stored_after_the_worker_died_without_running_the_model_again(
    submit, make_worker, queue
):
    job = submit()
    crashed = make_worker(name="w-1")
    crashed.sink = FlakySink(outages=1)
    with pytest.raises(StorageUnavailable):
        crashed.step()  # the model ran; storing failed; then the process died
    assert json.loads(queue.redis.hget(queue.job_prefix + str(job.pk), "kept"))["output"]["new_tokens"] > 0
    restarted = make_worker(name="w-1")  # same name: takes its own jobs back at once
    restarted.model = None  # it must not need the model for them
    while restarted.step():
        pass
    job.refresh_from_db()
    assert job.status == Job.Status.DONE and job.output_tokens > 0
    assert job.batch.worker == "w-1" and runs_measured(queue) == 1
    assert queue.live_job_ids() == set()


def test_a_kept_batch_stored_in_parts_after_a_crash_keeps_one_batch_record(submit, make_worker, queue):
    first, second = submit("Prompt one"), submit("Prompt two")
    crashed = make_worker(name="w-1")
    crashed.sink = FlakySink(outages=1)
    with pytest.raises(StorageUnavailable):
        crashed.step()  # both ran in one batch; storing failed; then the process died
    restarted = make_worker(name="w-1")
    restarted.settings.update(max_batch_size=1)  # now one job a window: the kept batch comes back in two parts
    while restarted.step():
        pass
    first.refresh_from_db()
    second.refresh_from_db()
    assert (first.status, second.status) == (Job.Status.DONE, Job.Status.DONE)
    assert first.batch_id == second.batch_id and BatchRecord.objects.count() == 1
    assert runs_measured(queue) == 1


class ExpiryFails(DatabaseSink):
    """The database sink, failing the first `outages` writes of expired jobs."""

    def __init__(self, outages: int = 1):
        self.outages = outages

    def jobs_expired(self, reasons):
        if self.outages:
            self.outages -= 1
            with connection.execute_wrapper(locked):  # this write answers "database is locked"
                return super().jobs_expired(reasons)
        return super().jobs_expired(reasons)


def test_a_batch_whose_expired_jobs_cannot_be_stored_is_still_held_and_retried(submit, make_worker, queue):
    doomed = job_submit(prompt="doomed", deadline_ms=1_200, allow_free_prompt=True)
    fine = job_submit(prompt="fine", deadline_ms=60_000, allow_free_prompt=True)
    queue.record_batch_time("short", 2_000)  # the doomed job cannot make it any more: expired at the lease
    worker = make_worker()
    worker.sink = ExpiryFails()
    with pytest.raises(StorageUnavailable):
        worker.step()
    assert [job.job_id for window in worker.in_flight for job in window.jobs] == [fine.pk]  # held, renewed
    assert worker.step() is True  # the retry ends the expired job and runs the batch
    doomed.refresh_from_db()
    fine.refresh_from_db()
    assert (doomed.status, fine.status) == (Job.Status.EXPIRED, Job.Status.DONE)


def test_a_passing_outage_never_fails_a_batch_however_many_quick_tries_it_takes(submit, make_worker, queue):
    job_submit(prompt="doomed", deadline_ms=1_200, allow_free_prompt=True)
    fine = job_submit(prompt="fine", deadline_ms=60_000, allow_free_prompt=True)
    queue.record_batch_time("short", 2_000)  # the doomed job is expired at the lease: storing that fails first
    worker = make_worker()
    worker.sink = ExpiryFails(outages=12)  # tried every 2 s by the loop: a restart of the database
    for _ in range(12):
        with pytest.raises(StorageUnavailable):
            worker.step()
    assert worker.step() is True
    fine.refresh_from_db()
    assert fine.status == Job.Status.DONE


def test_a_batch_that_cannot_start_for_a_minute_fails_with_its_reason(submit, make_worker, queue):
    job_submit(prompt="doomed", deadline_ms=1_200, allow_free_prompt=True)
    fine = job_submit(prompt="fine", deadline_ms=300_000, allow_free_prompt=True)
    queue.record_batch_time("short", 2_000)
    worker = make_worker()
    worker.sink = ExpiryFails(outages=1)
    with pytest.raises(StorageUnavailable):
        worker.step()
    worker.retrying_since = time.time() - GIVE_UP_AFTER_S  # a minute of tries that all failed
    assert worker.retry_step() is True
    fine.refresh_from_db()
    assert fine.status == Job.Status.FAILED
    assert fine.error == "the worker could not run this job's batch: it kept failing for 60 s"
    assert worker.in_flight == [] and queue.live_job_ids() == set()


def test_the_loop_tries_again_within_two_seconds_however_long_an_outage_lasts():
    delays = [retry_delay_s(failures) for failures in range(1, 100)]
    assert delays[:3] == [0.5, 1.0, 2.0]
    assert max(delays) == 2.0  # a Redis restart of 3 s held batches back 7 s more when it doubled to 30 s


class ExpiryWaits(DatabaseSink):
    """The database sink, keeping the write of expired jobs waiting (a table lock) until released."""

    def __init__(self):
        self.waiting, self.release = threading.Event(), threading.Event()

    def jobs_expired(self, reasons):
        self.waiting.set()
        self.release.wait(60)
        super().jobs_expired(reasons)


def test_the_heartbeat_goes_on_while_the_database_keeps_an_expiry_waiting(submit, make_worker, queue):
    job = submit()
    queue.record_batch_time("short", 600_000)  # it can no longer finish: the expiry timer ends it
    worker = make_worker(lanes=("long",))  # the batch thread leaves the short job to the expiry timer
    worker.sink = ExpiryWaits()
    thread = threading.Thread(target=worker.run_forever, daemon=True)
    thread.start()
    try:
        assert worker.sink.waiting.wait(30)
        beat = lambda: float(queue.redis.hget(queue.worker_key(worker.name), "heartbeat_at"))  # noqa: E731
        first = beat()
        # Two more heartbeats while the database holds the expiry: the worker is alive, not gone.
        wait_until(lambda: beat() >= first + 2 * HEARTBEAT_EVERY_S - 0.5, timeout=30, what="heartbeats")
    finally:
        worker.sink.release.set()
        # The expiry timer's thread stores the expiry once released: let it finish before the test database is
        # emptied (on PostgreSQL, its row lock and the flush's table lock deadlocked).
        wait_until(lambda: Job.objects.get(pk=job.pk).status == Job.Status.EXPIRED, what="the expiry stored")
        worker.stop()
        thread.join(30)


def test_an_outage_logs_a_few_lines_not_a_traceback_every_100_ms(make_worker, queue, caplog):
    worker = make_worker()
    worker.queue = JobQueue.from_url("redis://127.0.0.1:1/0", queue.prefix, base=queue.base)  # Redis is gone
    worker.settings = SettingsStore(worker.queue, worker.settings.defaults)
    timer = threading.Thread(target=timer_forever, args=(worker,), daemon=True)
    timer.start()
    time.sleep(3)  # about 30 tries of the timer
    worker.stop()
    timer.join(10)
    lines = [record for record in caplog.records if "timer" in record.getMessage()]
    assert lines[0].exc_info is not None  # the first failure with its traceback
    assert 2 <= len(lines) <= 5  # then the 2nd, 4th, 8th, 16th as one line each
    assert all(record.exc_info is None for record in lines[1:])


def test_a_database_outage_is_retried_without_counting_as_a_crash(submit, make_worker, queue):
    job = submit()
    worker = make_worker(max_deliveries=1)
    worker.sink = FlakySink(outages=3)
    for _ in range(3):
        with pytest.raises(StorageUnavailable):
            worker.step()
        assert Job.objects.get(pk=job.pk).status == Job.Status.RUNNING
    assert worker.step() is True  # the retry step runs the same window again
    job.refresh_from_db()
    assert job.status == Job.Status.DONE  # not buried as poison, although max_deliveries is 1
    assert queue.live_job_ids() == set()


def test_a_worker_takes_back_what_it_held_only_once_at_start(submit, make_worker, queue):
    submit()
    take_and_die(queue)
    worker = make_worker()
    worker.recover_step()
    assert queue.lane_depths()["short"] == 1
    worker.batch_step()
    submit()
    take_and_die(queue)  # leased under the same name, but in flight in another thread: not taken back
    worker.recover_step()
    assert queue.lane_depths()["short"] == 0


def test_the_timer_puts_back_the_jobs_of_a_worker_whose_heartbeat_stopped(submit, make_worker, queue):
    submit()
    collect_window(queue, "gone@host", lambda: SchedulerSettings(window_ms=0))  # leased by another worker...
    queue.redis.zadd(queue.workers_key, {"gone@host": queue.now() - 7})  # ...whose last heartbeat was 7 s ago
    worker = make_worker()
    worker.timer_step()  # the timer, whatever the batch thread is in (a long batch standing aside for many seconds)
    assert queue.lane_depths()["short"] == 1


def test_a_replayed_batch_never_overwrites_a_finished_job(submit, make_worker, queue):
    job = submit()
    worker = make_worker()
    window = collect_window(queue, worker.name, lambda: SchedulerSettings(window_ms=0))
    worker.run_batch(window)
    job.refresh_from_db()
    first_output, first_batch = job.output, job.batch_id
    Job.objects.filter(pk=job.pk).update(output="the first result")
    worker.run_batch(window)  # the same jobs again, as after a crash before the acknowledgement
    job.refresh_from_db()
    assert job.output == "the first result" and job.batch_id == first_batch
    assert first_output is not None


def test_the_sweep_requeues_unfinished_jobs_that_redis_lost(submit, queue, make_worker):
    waiting = submit("waiting")
    running = submit("running")
    Job.objects.filter(pk=running.pk).update(status=Job.Status.RUNNING)
    done = submit("done")
    Job.objects.filter(pk=done.pk).update(status=Job.Status.DONE)
    forget_everything(queue)

    assert jobs_requeue_lost(grace_s=0) == 2
    assert queue.live_job_ids() == {waiting.pk, running.pk}
    assert jobs_requeue_lost(grace_s=0) == 0  # already back on the queue: no duplicates
    make_worker().batch_step()
    assert set(Job.objects.filter(status=Job.Status.DONE).values_list("pk", flat=True)) == {
        waiting.pk,
        running.pk,
        done.pk,
    }


class CommitsWhileTheSweepReads(JobQueue):
    """The real queue; as the sweep reads which jobs Redis holds, a request that a table lock held commits its
    job (created 60 s ago) and queues it."""

    def __init__(self, queue: JobQueue, commit):
        super().__init__(queue.redis, queue.prefix, base=queue.base, pool=queue.pool)
        self.commit = commit

    def live_job_ids(self):
        live = super().live_job_ids()
        self.commit()
        return live


def test_the_sweep_leaves_a_job_committed_meanwhile_to_its_own_request(submit, queue, monkeypatch):
    def commit():
        job = submit("held by a lock")
        Job.objects.filter(pk=job.pk).update(created_at=job.created_at - timedelta(seconds=60))

    monkeypatch.setattr(services, "get_queue", lambda pool=None: CommitsWhileTheSweepReads(queue, commit))
    assert jobs_requeue_lost(grace_s=10) == 0  # its request queued it: not queued a second time
    assert queue.lane_depths()["short"] == 1


def test_the_sweep_leaves_fresh_jobs_alone(submit, queue):
    submit()
    forget_everything(queue)
    assert jobs_requeue_lost(grace_s=3600) == 0


def test_the_sweep_expires_lost_jobs_whose_deadline_passed(submit, queue):
    job = submit()
    forget_everything(queue)
    Job.objects.filter(pk=job.pk).update(deadline_at=job.created_at)
    assert jobs_requeue_lost(grace_s=0) == 0
    job.refresh_from_db()
    assert job.status == Job.Status.EXPIRED and "queue had lost it" in job.error
    assert job.latency.status == "expired"


def test_the_worker_heartbeat_says_what_it_runs(make_worker, queue):
    worker = make_worker()
    worker.heartbeat()
    beat = queue.redis.hgetall(f"{queue.prefix}:workers:w-test")
    assert beat["state"] == "idle" and beat["dtype"] == "float32"
    assert 0 < queue.redis.ttl(f"{queue.prefix}:workers:w-test") <= 15


def test_workers_lists_the_live_worker_and_keeps_a_gone_one_as_gone(make_worker, queue):
    make_worker().heartbeat()
    queue.redis.zadd(queue.workers_key, {"old@host": 1.0e9})  # heard from long ago, its hash expired
    queue.redis.zadd(queue.workers_key, {"quiet@host": time.time() - 60})
    listed = {worker["name"]: worker for worker in queue.workers()}
    assert set(listed) == {"w-test", "quiet@host"}  # older than an hour: forgotten
    assert listed["w-test"]["state"] == "idle"
    assert "state" not in listed["quiet@host"]


def test_the_heartbeat_lists_the_worker_under_each_lane_it_serves(make_worker, queue):
    make_worker(lanes=("long",)).heartbeat()
    assert queue.redis.zscore(queue.lane_workers_key("long"), "w-test") is not None
    assert queue.redis.zscore(queue.lane_workers_key("short"), "w-test") is None


def test_the_expiry_step_ends_jobs_that_can_no_longer_meet_their_deadline(make_worker, queue):
    late = job_submit(prompt="late", deadline_ms=300, allow_free_prompt=True)
    doomed = job_submit(prompt="doomed", deadline_ms=1_500, allow_free_prompt=True)
    fine = job_submit(prompt="fine", deadline_ms=60_000, allow_free_prompt=True)
    queue.record_batch_time("short", 2_000)  # a batch takes 2 s as things stand: more than doomed has
    time.sleep(0.4)
    worker = make_worker()
    assert worker.expiry_step() is True
    late.refresh_from_db()
    doomed.refresh_from_db()
    assert late.status == doomed.status == Job.Status.EXPIRED
    assert "deadline passed" in late.error
    assert "could not finish by its deadline" in doomed.error and "about 2000 ms" in doomed.error
    assert late.latency.status == "expired" and late.latency.inference_ms is None
    assert queue.live_job_ids() == {fine.pk}
    assert worker.expiry_step() is False


def test_the_settings_step_notices_a_new_version_and_says_so_in_the_heartbeat(make_worker, queue):
    worker = make_worker()
    worker.settings_step()
    worker.heartbeat()
    worker.settings.update(window_ms=5)
    assert worker.settings_step() is True
    assert worker.live_settings.window_ms == 5
    assert queue.redis.hget(queue.worker_key(worker.name), "settings_version") == "1"
    assert worker.settings_step() is False


def test_a_batch_record_keeps_its_lane_and_every_setting_it_ran_with(submit, make_worker):
    submit()
    make_worker().batch_step()
    batch = BatchRecord.objects.get()
    assert batch.lane == "short" and batch.settings["max_batch_size"] == 4
    assert set(batch.settings) >= {"window_ms", "max_batch_tokens", "default_deadline_ms", "queue_limit"}


class SeesBusy(DatabaseSink):
    """The database sink, noting when each finished batch's worker said it would be free."""

    def __init__(self, queue):
        super().__init__()
        self.queue, self.busy_until = queue, []

    def batch_finished(self, batch):
        super().batch_finished(batch)
        until = self.queue.redis.hget(self.queue.busy_key, batch.worker)
        self.busy_until.append((batch.lane, batch.inference_started_at, until))


def test_a_worker_says_until_when_it_is_busy_while_a_batch_runs(submit, make_worker, queue):
    queue.record_batch_time("short", 4_000)  # one batch measured: planned at 8 s (4 s and twice 2 s)
    submit()
    worker = make_worker()
    worker.sink = SeesBusy(queue)
    assert worker.batch_step() is True
    [(_, started, until)] = worker.sink.busy_until
    assert float(until) - queue.clock_offset == pytest.approx(started + 8, abs=0.5)
    assert queue.redis.hget(queue.busy_key, worker.name) is None  # free again


class SubmitsDuringLongBatch(DatabaseSink):
    """The database sink, plus a short job sent the moment a long batch starts."""

    short_job = None

    def batch_started(self, batch):
        super().batch_started(batch)
        if batch.lane == "long" and self.short_job is None:
            self.short_job = job_submit(prompt="Short note on belt 3.", deadline_ms=120_000, allow_free_prompt=True)


@pytest.fixture
def long_job(submit, queue):
    """A job in the long lane that keeps the tiny model busy for about a second."""
    get_settings_store().update(long_prompt_tokens=40, long_chunk_tokens=32)
    make_template(slug="shift-log", title="Shift log", body="Summarise this shift log: {log}", max_new_tokens=600)

    def long_job(deadline_ms=60_000):
        job = job_submit(
            template_slug="shift-log", variables={"log": "belt 3 slipped at station 7, " * 8},
            deadline_ms=deadline_ms, allow_free_prompt=True,
        )  # fmt: skip
        assert job.lane == "long"
        return job

    return long_job


def run_with_timer(worker):
    """Run one batch step with the worker's timer thread beside it, as run_forever does."""
    timer = threading.Thread(target=timer_forever, args=(worker,), daemon=True)
    timer.start()
    try:
        worker.batch_step()
    finally:
        worker.stop()
        timer.join()


def test_a_short_job_sent_during_a_long_batch_runs_between_its_steps(make_worker, long_job, tiny_model, queue):
    queue.record_batch_time("long", 2_000)  # planned at 4 s: 60 s leave plenty to share
    queue.record_batch_time("short", 100)
    long = long_job()
    worker = make_worker()
    worker.sink = SubmitsDuringLongBatch()
    run_with_timer(worker)
    long.refresh_from_db()
    short = Job.objects.get(pk=worker.sink.short_job.pk)
    assert short.status == long.status == Job.Status.DONE
    assert long.inference_started_at < short.inference_started_at < short.finished_at < long.inference_ended_at
    assert long.batch.paused_ms > 0
    assert worker.queue.redis.hget(worker.queue.long_runs_key, worker.name) is None  # said while it ran, not after
    assert long.batch.inference_ms < long.latency.inference_ms - long.batch.paused_ms + 1  # the model's time only
    # Its model time, without the pauses, went into the average (1 sample in 5 after the first).
    expected = 2_000 + (long.batch.inference_ms - 2_000) * 0.2
    assert worker.queue.measurements()["batch_ms:long"] == pytest.approx(expected, abs=0.1)
    alone = tiny_model.generate_batch(
        [long.prompt],
        GenerationParams(max_new_tokens=600),
        system_prompts=[long.system_prompt or None],
        decodings=[Decoding.from_dict(long.decoding)],
    )
    assert long.output == alone.generations[0].text  # standing aside changed nothing in the output


def test_a_long_batch_does_not_stand_aside_when_its_deadline_would_slip(make_worker, long_job, queue):
    # Planned at 58 s (29 s and twice its deviation of 14.5 s): a long job with 60 s is taken, but has no
    # time to give away to a short batch planned at 4 s.
    queue.record_batch_time("long", 29_000)
    queue.record_batch_time("short", 2_000)
    long = long_job(deadline_ms=60_000)
    worker = make_worker()
    worker.sink = SubmitsDuringLongBatch()
    run_with_timer(worker)
    long.refresh_from_db()
    assert long.status == Job.Status.DONE and long.batch.paused_ms == 0
    short = Job.objects.get(pk=worker.sink.short_job.pk)
    assert short.status == Job.Status.QUEUED  # still waiting: the next batch step runs it


class RedisGoneAtLongBatchEnd(JobQueue):
    """The real queue, with Redis gone when a long batch says it ended (its model run is over)."""

    def __init__(self, queue: JobQueue):
        super().__init__(queue.redis, queue.prefix, base=queue.base, pool=queue.pool)
        self.gone = True

    def clear_long_run(self, worker):
        if self.gone:
            self.gone = False
            raise redis.ConnectionError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")
        super().clear_long_run(worker)


def test_redis_lost_as_a_long_batch_ends_keeps_its_output_and_fails_no_job(make_worker, long_job, queue):
    queue.record_batch_time("long", 2_000)
    long = long_job()
    worker = make_worker()
    worker.queue = RedisGoneAtLongBatchEnd(queue)
    worker.batch_step()  # the model ran in steps; Redis refused the end-of-run note
    long.refresh_from_db()
    assert long.status == Job.Status.DONE and long.output_tokens > 0  # not "inference failed: ConnectionError"
    assert runs_measured(queue, "long") == 1
    queue.set_long_run(worker.name, 0.0, 1_000.0)  # what the long batch said while it ran, left behind...
    worker.timer_step()
    assert queue.redis.hget(queue.long_runs_key, worker.name) is None  # ...cleared by the timer once Redis answers


class RedisGoneAsALongBatchStarts(JobQueue):
    """The real queue, with Redis gone when a long batch reads its measurements to plan its steps."""

    def __init__(self, queue: JobQueue):
        super().__init__(queue.redis, queue.prefix, base=queue.base, pool=queue.pool)
        self.gone = False

    def measurements(self):
        if self.gone:
            self.gone = False
            raise redis.ConnectionError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")
        return super().measurements()


def test_redis_lost_as_a_long_batch_starts_is_retried_not_a_failed_job(make_worker, long_job, queue):
    queue.record_batch_time("long", 2_000)
    long = long_job()
    worker = make_worker()
    worker.queue = RedisGoneAsALongBatchStarts(queue)
    window = collect_window(worker.queue, worker.name, lambda: worker.settings.current(), lanes=("long",))
    worker.queue.gone = True
    with pytest.raises(redis.ConnectionError):
        worker.run_batch(window)
    assert Job.objects.get(pk=long.pk).status == Job.Status.RUNNING  # held for a retry, not failed
    assert worker.retry_step() is True
    long.refresh_from_db()
    assert long.status == Job.Status.DONE


@pytest.mark.parametrize(
    ("paused_s", "stands_aside"),
    [
        (8, False),  # ran 2 s of its 6 s plan in 10 of its 20 s span: behind its pace, it runs
        (6, True),  # ran 4 s: ahead of the 3 s its pace asks by now, it may stand aside
        (0, False),  # ran 10 s, more than its whole plan: it runs to the end
    ],
)
def test_a_long_batch_stands_aside_only_while_ahead_of_its_pace(make_worker, queue, paused_s, stands_aside):
    queue.record_batch_time("long", 3_000)  # planned at 6 s
    queue.record_batch_time("short", 480)  # 0.96 s and the 30 ms window: a span of about 20 s
    worker = make_worker()
    worker.long_batches.short_waiting.set()
    now = time.time()
    run = LongRun(now + 11, queue.measurements(), tokens=1_500, started=now - 10, paused_s=paused_s)  # 10 s in
    assert worker.long_batches.short_may_go(run, worker.live_settings) is stands_aside
    worker.long_batches.short_waiting.clear()
    assert worker.long_batches.short_may_go(run, worker.live_settings) is False  # nothing waits


def test_a_short_job_about_to_expire_goes_first_while_the_long_deadline_allows(make_worker, queue):
    queue.record_batch_time("long", 3_000)  # planned at 6 s
    queue.record_batch_time("short", 480)  # planned at about 1 s
    worker = make_worker()
    worker.long_batches.short_waiting.set()
    now = time.time()
    # 3 s of its 6 s done; long jobs waiting behind it leave it no pace to spare (finish by now + 3 s)...
    run = LongRun(now + 30, queue.measurements(), tokens=1_500, started=now - 3, finish_by=now + 3)
    assert worker.long_batches.short_may_go(run, worker.live_settings) is False
    worker.long_batches.short_at_risk.set()  # ...but a short job would expire: its own deadline has room for it
    assert worker.long_batches.short_may_go(run, worker.live_settings) is True
    late = LongRun(now + 3.5, queue.measurements(), tokens=1_500, started=now - 3)
    assert (
        worker.long_batches.short_may_go(late, worker.live_settings) is False
    )  # 3 s of work in 3.5 s: one short batch would break it


def test_a_warm_up_beside_short_work_runs_a_short_batch_between_the_long_chunks_first(tiny_model):
    """A worker serving both lanes runs one long prompt in steps with short batches between them (untimed),
    then measures as any worker: the same measurements, on the reference engine too."""
    assert run_beside(tiny_model, LOG_LINE * 4, chunk_tokens=16) >= 2  # a short batch after each chunk
    alone = measure_baseline(tiny_model, max_batch_size=4, new_tokens=8, chunk_tokens=64)
    beside = measure_baseline(tiny_model, max_batch_size=4, new_tokens=8, chunk_tokens=64, short_between=True)
    assert set(beside) == set(alone)
    for name in ("base_tokens:short", "base_steps:short", "base_steps:long"):
        assert beside[name] == alone[name]
    assert float(beside["base_step_ms:long"]) > 0 and float(beside["base_ms:short"]) > 0


def test_a_worker_publishes_its_warm_up_baseline_at_start_and_again_when_redis_lost_it(make_worker, queue, tiny_model):
    baseline = measure_baseline(tiny_model, max_batch_size=4, new_tokens=8, chunk_tokens=64)
    assert float(baseline["base_ms:short"]) > 0 and float(baseline["base_tokens:short"]) > 4 * 8
    assert baseline["base_steps:short"] == baseline["base_steps:long"] == "8"
    assert float(baseline["base_step_ms:long"]) > 0
    queue.redis.hset(queue.stats, "base_ms:short", "99999")  # an older worker's measurement
    worker = make_worker(baseline=baseline)
    worker.announce()
    assert queue.redis.hget(queue.stats, "base_ms:short") == baseline["base_ms:short"]
    queue.redis.delete(queue.stats)  # Redis restarted without its data
    worker.heartbeat()
    assert {name: queue.redis.hget(queue.stats, name) for name in baseline} == baseline
    queue.record_batch_time("short", 1_234)
    worker.heartbeat()  # a beat fills in what is missing, nothing more
    assert queue.measurements()["batch_ms:short"] == 1_234
