"""The worker loop: small steps (retry, recover, collect a window, run a batch) around one resident model.

The loop knows nothing of Django: results leave through a ResultSink that the caller provides.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

import redis

from inference.batch import BatchRun, JobResult
from inference.batch_time import batch_estimate_ms, output_extra_ms, padded_tokens
from inference.generation import BatchOutput, GenerationParams, StepCallback
from inference.kept_results import batches_from_kept, kept_fields
from inference.lanes import LANES, Lane
from inference.long_batches import LongBatches, LongRun
from inference.planning import ExpiredJob, batch_central_by_size, expiry_reason
from inference.scheduler import Window, collect_window
from inference.settings import SchedulerSettings
from inference.single_flight import distinct_runs, outputs_for_each
from inference.store.job_events import JobEvents
from inference.store.queue import JobQueue, QueuedJob, SettingsStore
from inference.token_stream import TokenStreams
from inference.worker_threads import FailureLog, retry_delay_s, start_beside

if TYPE_CHECKING:
    from inference.engine import Engine

log = logging.getLogger(__name__)

RECLAIM_EVERY_S = 1.0  # looking for leases that ran out: one small Lua call over the jobs in flight
HEARTBEAT_TTL_S = 15
# A batch that cannot start for this long (its tries failing in a row) fails, rather than block the worker: about
# what a passing outage (a restart of Redis or the database) never takes.
GIVE_UP_AFTER_S = 60.0


def batch_inputs(jobs: list[QueuedJob], on_step: StepCallback | None = None) -> dict:
    """The arguments of an Engine's generate_batch and generate_in_steps for these jobs: the batch
    runs to its longest output, each job is cut to its own."""
    return {
        "prompts": [job.prompt for job in jobs],
        "params": GenerationParams(max_new_tokens=max(job.max_new_tokens for job in jobs)),
        "system_prompts": [job.system_prompt or None for job in jobs],
        "max_new_tokens_each": [job.max_new_tokens for job in jobs],
        "decodings": [job.decoding for job in jobs],
        "on_step": on_step,
    }


def _from_cache(output: BatchOutput | str) -> bool:
    """Whether a run's answer came from the semantic cache (inference.semantic_cache), not the model."""
    return not isinstance(output, str) and output.generations[0].cached is not None


def decoding_steps(batch: BatchRun, outputs: list[BatchOutput | str]) -> tuple[int | None, float | None]:
    """The decoding steps a batch took (its longest output the model wrote: not an answer the semantic cache
    gave) and the time of one after the first (which also read the prompt): what a job that may write more than
    usual is planned with (batch_time.output_extra_ms).
    No time per step where it cannot be told: one step, no first token seen, or a long batch that paused."""
    modelled = [output for output in outputs if not isinstance(output, str) and not _from_cache(output)]
    steps = max((output.generations[0].new_tokens for output in modelled), default=0)
    if not steps:
        return None, None
    if steps < 2 or batch.first_token_at is None or batch.paused_ms:
        return steps, None
    decoding_ms = batch.model_ms - (batch.first_token_at - batch.inference_started_at) * 1000
    return steps, max(0.0, decoding_ms) / (steps - 1) or None


def failure_reason(error: Exception) -> str:
    return f"inference failed: {type(error).__name__}: {error}"


class StorageUnavailable(Exception):
    """The sink cannot reach its storage right now (the database is down or locked): worth waiting for."""


class ResultSink(Protocol):
    def batch_started(self, batch: BatchRun) -> None: ...

    def batch_finished(self, batch: BatchRun) -> None: ...

    def jobs_failed(self, job_ids: list[int], reason: str) -> None: ...

    def jobs_expired(self, reasons: dict[int, str]) -> None: ...


def steps_long(settings: SchedulerSettings, lanes: Sequence[str]) -> bool:
    """Long batches run in steps that short batches may come between: when the worker serves both lanes."""
    return bool(settings.long_chunk_tokens) and set(lanes) == set(LANES)


class BatchWorker:
    def __init__(
        self,
        *,
        model: Engine,
        queue: JobQueue,
        sink: ResultSink,
        settings: SettingsStore,
        name: str | None = None,
        lanes: tuple[str, ...] = LANES,
        max_deliveries: int = 3,
        reclaim_idle_ms: int = 60_000,
        baseline: dict[str, str] | None = None,
    ):
        self.model = model
        self.queue = queue
        self.sink = sink
        self.settings = settings
        self.name = name or f"worker@{socket.gethostname()}"
        self.lanes = lanes
        self.max_deliveries = max_deliveries
        # Leases of jobs in flight are renewed by the heartbeat, so only a silent worker's leases run out.
        self.reclaim_idle_ms = reclaim_idle_ms
        # Batch times measured at start (inference.warm_up): published before the first job, and again
        # whenever Redis lost them, so admission never plans without them while this worker runs.
        self.baseline = baseline or {}
        self.stopping = threading.Event()
        self.finished = threading.Event()  # the batch thread is done: the heartbeat stops
        # Windows whose batch did not complete, retried first: one, or two while a short batch runs
        # inside a paused long one. The timer renews their leases.
        self.in_flight: list[Window] = []
        self.long_batches = LongBatches(self.name)  # the long batch in steps, shared with the timer
        self.events = JobEvents(queue.redis, queue.base)  # streamed text of the jobs that ask for it
        self.retrying_since: float | None = None  # when the batch in flight first needed a retry
        self.recovered_own = False
        self.last_batch_at = 0.0
        self.last_batch: tuple[int, float, str] | None = None  # size, inference ms, lane: for the dashboard
        self.started_at = time.time()
        self.settings_version = -1
        self._settings_lock = threading.Lock()  # the batch thread and the timer both apply new versions
        self.live_settings: SchedulerSettings = settings.defaults  # refreshed by batch_step and the timer
        self.window_ms: int | None = None
        self.window_reason = ""
        self._last_reclaim = 0.0

    # --- steps: each returns True when it did work -----------------------------------------

    def retry_step(self) -> bool:
        """Finish a batch that a database or Redis error interrupted in this process.

        A batch whose outputs exist is only stored again, never run again, for as long as the database
        is out of reach (StorageUnavailable); any other error fails its jobs after GIVE_UP_AFTER_S. One that
        did not get that far runs again; its jobs are not read from Redis again, so their delivery count
        (the crash counter) stays put. The loop backs off between tries (run_forever).
        """
        if not self.in_flight:
            return False
        window = self.in_flight[0]
        self.retrying_since = self.retrying_since or time.time()
        if not window.storage_down and time.time() - self.retrying_since >= GIVE_UP_AFTER_S:
            # Something about these jobs keeps failing (not an outage that kept outputs wait out): fail them.
            ran = "store this job's result" if window.batch is not None else "run this job's batch"
            reason = f"the worker could not {ran}: it kept failing for {GIVE_UP_AFTER_S:.0f} s"
            log.error("%s: %s (jobs %s)", self.name, reason, [job.job_id for job in window.jobs])
            self.sink.jobs_failed([job.job_id for job in window.jobs], reason)
            self.queue.ack(window.jobs)
            self.queue.clear_busy(self.name)
            self.in_flight.remove(window)
            self.retrying_since = None
            return True
        log.warning("%s retries a batch of %d job(s) after an error", self.name, len(window.jobs))
        self.run_batch(window)
        return True

    def recover_step(self) -> bool:
        """Once, at start: put back what this worker held when it died (same name). The jobs return to their
        lanes and run in deadline order. (What other workers held when they went silent, the timer puts back:
        reclaim_step.)"""
        if self.recovered_own:
            return False  # the common case between batches: no Redis round trip
        count = self.queue.reclaim(worker=self.name)
        self.recovered_own = True
        if count:
            log.warning("%s put back %d job(s) of a worker that stopped", self.name, count)
        return False  # nothing ran yet: the batch step takes them

    def reclaim_step(self) -> int:
        """Every second, on the timer: put back in their lanes the jobs of workers whose heartbeat has been
        silent for 6 s (they died), or whose lease ran out. On the timer, not between batches: a long batch
        that stands aside for short ones can run for many seconds (until its deadline), and a dead worker's
        jobs must not wait for it to end (they waited 12 s where the heartbeat said 6 s)."""
        if time.time() - self._last_reclaim <= RECLAIM_EVERY_S:
            return 0
        self._last_reclaim = time.time()
        count = self.queue.reclaim()
        if count:
            log.warning("%s put back %d job(s) of a worker that stopped", self.name, count)
        return count

    def batch_step(self) -> bool:
        self.live_settings, version = self.settings.current_with_version()
        self._settings_applied(version)
        window = collect_window(
            self.queue,
            self.name,
            lambda: self.live_settings,
            lanes=self.lanes,
            lease_ms=self.reclaim_idle_ms,
            long_stands_aside=self._steps_long(self.live_settings),
        )
        if window is None:
            self.queue.wait_for_work(0.5, self.lanes)
            return False
        self.window_ms, self.window_reason = window.window_ms, window.window_reason
        if not window.jobs:
            if window.expired:
                self._expire(window.expired)
            return bool(window.expired)
        self.run_batch(window)
        return True

    def expiry_step(self) -> bool:
        """The expiry timer's step, run by its own thread: a job learns it expired even during a long batch."""
        expired = self.queue.expire_due(self._lane_estimates())
        if expired:
            self._expire(expired)
        return bool(expired)

    def _lane_estimates(self) -> dict[str, list[float]]:
        measurements = self.queue.measurements()
        return {lane: batch_central_by_size(self.live_settings, measurements, lane) for lane in LANES}

    def _expire(self, expired: list[ExpiredJob]) -> None:
        now_ms = self.queue.now() * 1000
        reasons = {job.job_id: expiry_reason(job, now_ms) for job in expired}
        log.info("%s: %d job(s) expired", self.name, len(reasons))
        self.sink.jobs_expired(reasons)

    def step(self) -> bool:
        return self.retry_step() or self.recover_step() or self.batch_step()

    # --- one batch -------------------------------------------------------------------------

    def run_batch(self, window: Window) -> BatchRun | None:
        """Run a window's batch and store it. The window is held (in flight, its leases renewed) from the
        first line, so any error leaves it to retry_step. Errors of the model fail jobs with a reason;
        errors of the sink or Redis propagate. Outputs are kept beside the lease in Redis as soon as they
        exist (inference.kept_results): a retry, or another worker after a crash, stores them without
        running the model again."""
        if window not in self.in_flight:
            self.in_flight.append(window)
        if window.expired:
            self._expire(window.expired)
            window.expired = None
        if window.batch is None:
            replayed = [job for job in window.jobs if job.kept]
            if replayed:
                self._store_kept(replayed)
                window.jobs = [job for job in window.jobs if not job.kept]
            jobs = window.jobs = self._drop_poison(window.jobs)  # buried once, not again on a retry
            if not jobs:
                self.in_flight.remove(window)
                return None
            window.batch = self._infer(window, jobs)
            try:
                self.queue.keep_results(kept_fields(window.batch))
            except redis.RedisError:
                log.exception("%s: could not keep a batch's outputs in Redis; storing them from memory", self.name)
        batch = window.batch
        try:
            self.sink.batch_finished(batch)
        except StorageUnavailable:
            window.storage_down = True  # its outputs wait for the database, however long it takes
            raise
        self.queue.ack(batch.jobs)
        self.queue.clear_busy(self.name)
        self.in_flight.remove(window)
        self.retrying_since = None
        self.last_batch_at = time.time()
        self.last_batch = (len(batch.jobs), batch.inference_ms, batch.lane)
        return batch

    def _infer(self, window: Window, jobs: list[QueuedJob]) -> BatchRun:
        """Mark the jobs running, run the model on them, and measure the batch."""
        batch = BatchRun(
            batch_id=uuid.uuid4().hex,
            worker=self.name,
            jobs=jobs,
            settings=window.settings,
            lane=window.lane,
            window_ms=window.window_ms,
            window_opened_at=window.opened_ms / 1000,
            inference_started_at=time.time(),
        )
        # Admission plans new jobs from when this worker is free again (the lease said so roughly already;
        # a long batch in steps says more, see _generate_long).
        if not (window.lane == Lane.LONG and self._steps_long(batch.settings)):
            estimate_ms = batch_estimate_ms(window.measurements, window.lane, padded_tokens(jobs)) + output_extra_ms(
                window.measurements, window.lane, max(job.max_new_tokens for job in jobs)
            )
            self.queue.set_busy(self.name, estimate_ms)
        try:
            self.sink.batch_started(batch)
        except Exception:  # only a status shown while it runs: the outputs matter more
            log.exception("%s: could not mark %d job(s) running; running them anyway", self.name, len(jobs))
        batch.inference_started_at = time.time()  # after the database write: inference_ms is inference only
        # A job that already crashed a worker runs alone, so it cannot take its batch-mates down again.
        isolate = len(jobs) > 1 and any(job.deliveries > 1 for job in jobs)
        runs, batch.copies = distinct_runs(jobs)  # identical prompts run once (single flight)
        if isolate:
            outputs = self._generate_each(runs)
        else:
            streams = self._streams(runs, jobs, batch.copies)
            outputs = self._generate(runs, batch, streams)
            batch.first_token_at = streams.first_at
        modelled = [run for run, output in zip(runs, outputs, strict=True) if not _from_cache(output)]
        outputs = outputs_for_each(jobs, runs, outputs, batch.copies)
        batch.inference_ended_at = time.time()
        ids = " ".join(str(job.job_id) for job in jobs)
        log.info(
            "%s ran a %s batch of %d job(s) [%s] in %.0f ms", self.name, batch.lane, len(jobs), ids, batch.model_ms
        )
        # The batch's time measures the rows the model ran: rows the semantic cache answered cost it nothing.
        if batch.model_ms and modelled and len(outputs) == len(jobs) and not isolate:
            try:
                tokens = padded_tokens(modelled)
                steps, step_ms = decoding_steps(batch, outputs)
                self.queue.record_batch_time(window.lane, batch.model_ms, tokens=tokens, jobs=len(modelled),
                                             steps=steps, step_ms=step_ms)  # fmt: skip
            except redis.RedisError:  # one measurement fewer; raising here would run the model again on retry
                log.warning("%s: Redis did not take this batch's time", self.name)
        for job, output in zip(jobs, outputs, strict=True):
            if isinstance(output, str):
                batch.failures[job.job_id] = output
                continue
            [generation] = output.generations
            batch.padded_tokens += output.padded_tokens
            counts = (generation.prompt_tokens, generation.new_tokens)
            result = JobResult(job.job_id, generation.text, *counts, job.picked_at, generation.finish_reason,
                               choice=generation.choice, cached=generation.cached)  # fmt: skip
            batch.results.append(result)
        return batch

    def _streams(self, runs: list[QueuedJob], jobs: list[QueuedJob], copies: dict[int, int]) -> TokenStreams:
        """The step callback: the text of the jobs that stream, every job's token count, the first token's
        time. A run speaks for its own job and for the identical ones it answers (copies: single flight)."""
        row_of = {job.job_id: row for row, job in enumerate(runs)}
        rows: list[list[int]] = [[] for _ in runs]
        for job in jobs:
            rows[row_of[copies.get(job.job_id, job.job_id)]].append(job.job_id)
        streaming = {job.job_id for job in jobs if job.decoding.stream}
        decodings = [job.decoding for job in runs]
        return TokenStreams(rows, streaming, decodings, self.model.decode, self.events.publish_text)

    def _store_kept(self, jobs: list[QueuedJob]) -> None:
        """Store the outputs an earlier run of these jobs kept in Redis (it stopped before storing them)."""
        for batch in batches_from_kept(jobs):
            log.warning("%s stores %d kept output(s) of batch %s", self.name, len(batch.results), batch.batch_id)
            self.sink.batch_finished(batch)
        self.queue.ack(jobs)

    def _generate(
        self, jobs: list[QueuedJob], batch: BatchRun, on_step: StepCallback | None
    ) -> list[BatchOutput | str]:
        """One call for the whole batch; if it fails, each job alone, so only the bad ones fail."""
        try:
            if batch.lane == Lane.LONG and self._steps_long(batch.settings):
                output = self._generate_long(jobs, batch, on_step)
            else:
                output = self.model.generate_batch(**batch_inputs(jobs, on_step))
        except redis.RedisError:
            raise  # an outage, not the job's fault (a long batch reads Redis): the window is retried
        except Exception as error:
            if len(jobs) == 1:
                log.exception("job %s failed", jobs[0].job_id)
                return [failure_reason(error)]
            log.exception("batch of %d failed; running its jobs one by one", len(jobs))
            return self._generate_each(jobs)
        padded_each = output.padded_tokens // len(jobs)
        return [BatchOutput([generation], padded_each, output.inference_ms) for generation in output.generations]

    def _steps_long(self, settings: SchedulerSettings) -> bool:
        return steps_long(settings, self.lanes)

    def _generate_long(self, jobs: list[QueuedJob], batch: BatchRun, on_step: StepCallback | None) -> BatchOutput:
        """A long batch in steps (prefill chunks, then decoding), letting short batches run in between
        while it is ahead of its pace (planning.short_may_go, through LongBatches)."""
        run = LongRun(
            deadline=min(job.deadline_ms for job in jobs) / 1000 - self.queue.clock_offset,
            measurements=self.queue.measurements(),
            tokens=padded_tokens(jobs),
        )
        steps = self.model.generate_in_steps(
            **batch_inputs(jobs, on_step),
            chunk_tokens=batch.settings.long_chunk_tokens,
            pause_wanted=lambda: self.long_batches.short_may_go(run, self.live_settings),
        )
        self.queue.clear_busy(self.name)  # it stands aside for short batches: its long run says the rest
        try:
            return self.long_batches.run_in_steps(
                self.queue,
                run,
                steps,
                settings=lambda: self.live_settings,
                run_short=lambda: self._run_short_batch(run),
            )
        finally:
            batch.paused_ms = run.paused_s * 1000

    def _run_short_batch(self, run: LongRun) -> bool:
        """One short batch while a long one stands aside; False when the short lane had none."""
        window = collect_window(
            self.queue, self.name, lambda: self.live_settings, lanes=(Lane.SHORT,), lease_ms=self.reclaim_idle_ms
        )
        if window is None:
            return False
        if window.jobs:
            self.run_batch(window)  # holds the window from its first line
            run.measurements = self.queue.measurements()
        elif window.expired:
            self._expire(window.expired)
        return True

    def _generate_each(self, jobs: list[QueuedJob]) -> list[BatchOutput | str]:
        outputs: list[BatchOutput | str] = []
        for job in jobs:
            try:
                streams = self._streams([job], [job], {})
                outputs.append(self.model.generate_batch(**batch_inputs([job], streams)))
            except Exception as error:
                log.exception("job %s failed", job.job_id)
                outputs.append(failure_reason(error))
        return outputs

    def _drop_poison(self, jobs: list[QueuedJob]) -> list[QueuedJob]:
        healthy = []
        for job in jobs:
            if job.deliveries > self.max_deliveries:
                reason = f"gave up after {job.deliveries - 1} attempts: the worker stopped while running it each time"
                log.error("job %s: %s", job.job_id, reason)
                self.sink.jobs_failed([job.job_id], reason)
                self.queue.bury(job, reason)
            else:
                healthy.append(job)
        return healthy

    # --- heartbeat and timer ----------------------------------------------------------------

    def heartbeat(self) -> None:
        """Say we are alive (for people and dashboards) and renew the leases of our jobs in flight."""
        held = self._held_jobs()
        if held:
            self.queue.touch(held, self.reclaim_idle_ms)
        status = {
            **self.model.identity.fields(),  # model, revision, dtype, device, engine
            "context_length": self.model.context_length or "",
            "lanes": ",".join(self.lanes),
            "state": "busy" if held else "idle",
            "started_at": self.started_at,
            "last_batch_at": self.last_batch_at,
            **_last_batch_fields(self.last_batch),
            "running": len(held),  # jobs of the batch (or batches) in flight now
            "settings_version": self.settings_version,
            "window_ms": "" if self.window_ms is None else self.window_ms,
            "window_reason": str(self.window_reason),  # English; the pages translate window_why
            "window_why": json.dumps(list(self.window_reason)) if self.window_reason else "",
        }
        self.queue.beat(self.name, lanes=self.lanes, status=status, ttl_s=HEARTBEAT_TTL_S)
        if self.baseline:
            self.queue.publish_baseline(self.baseline, replace=False)

    def announce(self) -> None:
        """At start, before the first job: what this worker measured, that it is alive (tests and `make
        run` wait for its heartbeat key), and that nothing said under its name before a crash holds now."""
        self.queue.sync_clock()
        self.queue.clear_busy(self.name)
        self.queue.clear_long_run(self.name)
        if self.baseline:  # this start's measurement replaces an older one
            self.queue.publish_baseline(self.baseline, replace=True)
        self.settings_step()  # the first write to this worker's key: tests and `make run` wait for it
        self.heartbeat()

    def settings_step(self) -> bool:
        """Pick up saved settings within a fraction of a second, even in the middle of a window."""
        self.live_settings, version = self.settings.current_with_version()
        return self._settings_applied(version)

    def _settings_applied(self, version: int) -> bool:
        """Say when a new settings version was first applied, whichever thread read it first."""
        with self._settings_lock:
            if version <= self.settings_version:  # a slower reader's older version must not step it back
                return False
            self.settings_version = version
        self.queue.settings_applied(self.name, version, at=time.time())
        return True

    def _held_jobs(self) -> list[QueuedJob]:
        return [job for window in list(self.in_flight) for job in window.jobs]

    def timer_step(self) -> None:
        """One tick of the timer thread: settings pick-up, dead workers' jobs put back, the long batch's checks.
        Redis only (the expiry timer, which writes to the database, has a thread of its own)."""
        self.settings_step()
        self.reclaim_step()
        self.long_batches.observe(self.queue, self.live_settings)

    def run_forever(self) -> None:
        log.info("%s serves the %s lane(s) of %s", self.name, " and ".join(self.lanes), self.queue.prefix)
        ready = False
        failures = FailureLog(f"{self.name}: the batch loop")
        try:
            while not self.stopping.is_set():
                try:
                    if not ready:  # inside the retrying loop: a Redis that is down at start must not end the thread
                        self.announce()
                        start_beside(self)  # the timer, the expiry timer and the heartbeat
                        ready = True
                    self.step()
                    failures.worked()
                except Exception:  # Redis or the database went away: wait and try again, never die
                    self.stopping.wait(retry_delay_s(failures.failed()))
        finally:
            self.finished.set()
        log.info("%s stopped", self.name)

    def stop(self) -> None:
        self.stopping.set()


def _last_batch_fields(last: tuple[int, float, str] | None) -> dict:
    if last is None:
        return {"last_batch_size": "", "last_batch_ms": "", "last_batch_lane": ""}
    size, inference_ms, lane = last
    return {"last_batch_size": size, "last_batch_ms": round(inference_ms, 1), "last_batch_lane": lane}
