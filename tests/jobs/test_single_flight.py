"""Single flight: identical requests share one run of the model, yet each job keeps its own deadline, priority
and outcome, and no answer names another source's job. Real Redis, real commits, the tiny model."""

import threading
import time
from contextlib import nullcontext

import pytest
from django.db import connection

from edgeportal.core.queueing import scheduler_settings
from edgeportal.jobs.entry import job_submit
from edgeportal.jobs.models import Job
from edgeportal.jobs.selectors import job_as_json
from edgeportal.jobs.services import job_queue_new
from edgeportal.latency.models import JobLatency
from edgeportal.sources.services import source_create
from inference.scheduler import collect_window
from inference.settings import SchedulerSettings
from tests.jobs.test_batch_loop import ModelFailingOn, RecordingModel

pytestmark = pytest.mark.django_db(transaction=True)

PROMPT = "Translate for the night shift: replace belt 2."


@pytest.fixture
def sources(db):
    return source_create(name="camera-a", kind="camera")[0], source_create(name="plc-b", kind="plc")[0]


def submit(source, prompt=PROMPT, **fields):
    return job_submit(prompt=prompt, source=source, allow_free_prompt=True, **fields)


class ModelThatMeanwhile(RecordingModel):
    """The tiny model, doing something else (another request arriving, the expiry timer) during its first run."""

    def __init__(self, model, meanwhile):
        super().__init__(model)
        self.meanwhile = meanwhile

    def generate_batch(self, prompts, *args, **kwargs):
        if len(self.calls) == 0:
            self.meanwhile()
        return super().generate_batch(prompts, *args, **kwargs)


def reveals(job: Job, other: Job) -> bool:
    """Whether anything a job's sender sees (its API answer) names the other job."""
    answer = job_as_json(Job.objects.select_related("latency", "batch").get(pk=job.pk))
    return f"job {other.pk}" in str(answer) or "follows" in answer or "identical job" in str(answer)


def test_identical_jobs_in_one_batch_run_the_model_once(make_worker, tiny_model, sources, queue):
    first, second = submit(sources[0]), submit(sources[1])
    assert queue.live_job_ids() == {first.pk, second.pk}  # each is queued with its own rank and deadline
    model = RecordingModel(tiny_model)
    make_worker(model=model).batch_step()
    assert model.calls == [[PROMPT]]
    first.refresh_from_db()
    second.refresh_from_db()
    assert first.status == second.status == Job.Status.DONE and second.output == first.output
    assert not first.cache_hit and second.cache_hit and second.follows_id == first.pk
    assert first.batch == second.batch and first.batch.size == 2
    assert first.batch.padded_tokens == first.latency.prompt_tokens  # the model read the prompt once
    assert second.latency.cache_hit and not reveals(second, first)
    assert submit(sources[1]).cache_hit  # and the result is cached for later requests


def overlapping(barrier: threading.Barrier):
    """A database hook (Django's execute_wrapper) that holds each entry's transaction open after it inserted
    its job until the other entry has inserted its own: on PostgreSQL both rows then exist, uncommitted, at
    the same moment. (SQLite lets one writer in at a time: there the second entry waits for the first.)"""

    def hold(execute, sql, params, many, context):
        result = execute(sql, params, many, context)
        if sql.startswith('INSERT INTO "jobs_job"'):
            barrier.wait(timeout=30)
        return result

    return hold


def test_simultaneous_identical_requests_from_two_sources_run_the_model_once(make_worker, tiny_model, sources):
    """Two entries, each in its own thread and transaction, commit identical jobs at the same moment: the
    model runs the prompt once, and both jobs end done with its output."""
    model = RecordingModel(tiny_model)
    overlap = connection.vendor == "postgresql"
    for round_ in range(5):
        prompt = f"{PROMPT} Round {round_}."
        inserted, jobs, errors = threading.Barrier(2), {}, []

        def send(source, prompt=prompt, inserted=inserted, jobs=jobs, errors=errors):
            try:
                with connection.execute_wrapper(overlapping(inserted)) if overlap else nullcontext():
                    jobs[source.name] = submit(source, prompt)
            except Exception as error:
                errors.append(error)
            finally:
                connection.close()

        threads = [threading.Thread(target=send, args=(source,)) for source in sources]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert not errors
        make_worker(model=model).batch_step()
        finished = Job.objects.filter(pk__in=[job.pk for job in jobs.values()])
        assert {job.status for job in finished} == {Job.Status.DONE}
        assert len({job.output for job in finished}) == 1
        assert [call.count(prompt) for call in model.calls if prompt in call] == [1]


def test_a_job_that_arrives_while_an_identical_one_runs_is_answered_by_that_run(make_worker, tiny_model, sources):
    first, later = submit(sources[0]), []
    model = ModelThatMeanwhile(tiny_model, lambda: later.append(submit(sources[1])))
    make_worker(model=model).batch_step()
    [second] = later
    assert model.calls == [[PROMPT]]
    first.refresh_from_db()
    second.refresh_from_db()
    assert second.status == Job.Status.DONE and second.cache_hit and second.output == first.output
    assert second.follows_id == first.pk and second.batch is None
    assert not reveals(second, first)
    assert make_worker(model=model).batch_step() is False  # it left the queue: nothing runs it again


def test_an_identical_job_a_worker_already_leased_runs_and_is_stored_once(make_worker, sources, queue):
    first = submit(sources[0])
    window_a = collect_window(queue, "w-a", lambda: SchedulerSettings(window_ms=0))
    second = submit(sources[1])
    window_b = collect_window(queue, "w-b", lambda: SchedulerSettings(window_ms=0))
    make_worker(name="w-a").run_batch(window_a)
    first.refresh_from_db()
    second.refresh_from_db()
    assert first.status == Job.Status.DONE
    assert second.status == Job.Status.QUEUED  # leased by w-b: not taken from it
    make_worker(name="w-b").run_batch(window_b)
    second.refresh_from_db()
    assert second.status == Job.Status.DONE and not second.cache_hit and second.worker == "w-b"
    assert JobLatency.objects.filter(job=second).count() == 1
    assert queue.live_job_ids() == set()


def test_an_identical_job_with_a_shorter_deadline_expires_on_its_own_while_the_first_runs(
    make_worker, tiny_model, sources
):
    first, later = submit(sources[0], deadline_ms=60_000), []
    worker = make_worker()

    def short_deadline_arrives():
        later.append(submit(sources[1], deadline_ms=400))  # admitted: the tiny model's prior plans ~0.15 s
        time.sleep(0.5)
        worker.expiry_step()  # the worker's timer, while the first job's batch runs

    worker.model = ModelThatMeanwhile(tiny_model, short_deadline_arrives)
    worker.batch_step()
    [second] = later
    first.refresh_from_db()
    second.refresh_from_db()
    assert first.status == Job.Status.DONE
    assert second.status == Job.Status.EXPIRED and second.finished_at < first.finished_at
    assert second.error.startswith("expired:") and not reveals(second, first)


def test_the_first_jobs_expiry_does_not_end_an_identical_job_with_time_left(make_worker, tiny_model, sources, queue):
    first = submit(sources[0], deadline_ms=400)
    second = submit(sources[1], deadline_ms=60_000)
    time.sleep(0.5)
    model = RecordingModel(tiny_model)
    worker = make_worker(model=model)
    assert worker.expiry_step() is True
    first.refresh_from_db()
    assert first.status == Job.Status.EXPIRED and not reveals(first, second)
    assert queue.live_job_ids() == {second.pk}
    worker.batch_step()  # it runs itself
    second.refresh_from_db()
    assert second.status == Job.Status.DONE and not second.cache_hit and second.error == ""
    assert model.calls == [[PROMPT]]


def test_a_failed_run_fails_only_with_its_own_reason_and_is_never_cached(make_worker, tiny_model, sources):
    first, second = submit(sources[0], "a bad prompt"), submit(sources[1], "a bad prompt")
    make_worker(model=ModelFailingOn(tiny_model, "a bad prompt")).batch_step()
    for job, other in ((first, second), (second, first)):
        job.refresh_from_db()
        assert job.status == Job.Status.FAILED and job.error == "inference failed: RuntimeError: out of memory"
        assert not reveals(job, other)
    retry = submit(sources[0], "a bad prompt")
    assert not retry.cache_hit and retry.status == Job.Status.QUEUED  # the prompt is free to run again


def test_a_job_committed_just_after_an_identical_one_was_answered_finds_that_answer(make_worker, sources, queue):
    """The other half of the race flight_answer leaves: a job whose row was not committed yet when the
    identical job finished and looked for jobs to answer."""
    first = submit(sources[0])
    second = Job.objects.create(prompt=PROMPT, max_new_tokens=first.max_new_tokens, cache_key=first.cache_key)
    make_worker().batch_step()  # finishes the first; the second is not queued yet (as before its on_commit ran)
    job_queue_new(second, scheduler_settings())
    second.refresh_from_db()
    assert second.status == Job.Status.DONE and second.cache_hit and second.follows_id == first.pk
    assert queue.live_job_ids() == set()
