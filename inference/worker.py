"""The worker loop: small steps (retry, recover, collect a window, run a batch) around one resident model.

The loop knows nothing of Django: results leave through a ResultSink that the caller provides.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from inference.generation import BatchOutput, GenerationParams
from inference.queue import JobQueue, QueuedJob
from inference.scheduler import SchedulerSettings, SettingsStore, Window, collect_window

if TYPE_CHECKING:
    from inference.runtime import ResidentModel

log = logging.getLogger(__name__)

HEARTBEAT_EVERY_S = 2.0
HEARTBEAT_TTL_S = 15
MAX_RETRIES = 5  # a batch whose results cannot be stored this often in a row fails, rather than block the worker


@dataclass(frozen=True)
class JobResult:
    job_id: int
    text: str
    prompt_tokens: int
    new_tokens: int
    picked_at: float


@dataclass
class BatchRun:
    """What one batch did, handed to the sink before and after inference."""

    batch_id: str
    worker: str
    jobs: list[QueuedJob]
    settings: SchedulerSettings
    window_opened_at: float
    inference_started_at: float
    inference_ended_at: float | None = None
    padded_tokens: int = 0
    results: list[JobResult] = field(default_factory=list)
    failures: dict[int, str] = field(default_factory=dict)  # job id -> reason

    @property
    def inference_ms(self) -> float:
        return ((self.inference_ended_at or self.inference_started_at) - self.inference_started_at) * 1000


def failure_reason(error: Exception) -> str:
    return f"inference failed: {type(error).__name__}: {error}"


class ResultSink(Protocol):
    def batch_started(self, batch: BatchRun) -> None: ...

    def batch_finished(self, batch: BatchRun) -> None: ...

    def jobs_failed(self, job_ids: list[int], reason: str) -> None: ...


class BatchWorker:
    def __init__(
        self,
        *,
        model: ResidentModel,
        queue: JobQueue,
        sink: ResultSink,
        settings: SettingsStore,
        name: str | None = None,
        max_deliveries: int = 3,
        reclaim_idle_ms: int = 60_000,
    ):
        self.model = model
        self.queue = queue
        self.sink = sink
        self.settings = settings
        self.name = name or f"worker@{socket.gethostname()}"
        self.max_deliveries = max_deliveries
        # Jobs in flight are touched by the heartbeat, so only a silent worker's jobs stay idle this long.
        self.reclaim_idle_ms = reclaim_idle_ms
        self.stopping = threading.Event()
        self.in_flight: Window | None = None  # a window whose batch did not complete: retried first
        self.retries = 0
        self.recovered_own = False
        self.last_batch_at = 0.0
        self.started_at = time.time()
        self._last_reclaim = 0.0

    # --- steps: each returns True when it did work -----------------------------------------

    def retry_step(self) -> bool:
        """Run again a batch that a database or Redis error interrupted in this process.

        Its jobs are not read from Redis again, so their delivery count (the crash counter) stays put.
        """
        if self.in_flight is None:
            return False
        window = self.in_flight
        self.retries += 1
        if self.retries > MAX_RETRIES:
            # Something about these jobs keeps failing (not a passing outage): fail them and move on.
            reason = f"the worker could not store this job's result after {MAX_RETRIES} tries"
            log.error("%s: %s (jobs %s)", self.name, reason, [job.job_id for job in window.jobs])
            self.sink.jobs_failed([job.job_id for job in window.jobs], reason)
            self.queue.ack(window.jobs)
            self.in_flight, self.retries = None, 0
            return True
        log.warning("%s retries batch of %d job(s) after an error", self.name, len(window.jobs))
        self.run_batch(window)
        return True

    def recover_step(self) -> bool:
        """Once at start: what this worker held when it died. Then, now and again: what silent workers hold."""
        if not self.recovered_own:
            jobs = self.queue.read_own_pending(self.name, 1_000)
            self.recovered_own = True
        elif time.time() - self._last_reclaim > self.reclaim_idle_ms / 4000:
            self._last_reclaim = time.time()
            jobs = self.queue.reclaim_idle(self.name, self.reclaim_idle_ms, 1_000)
        else:
            return False  # the common case between batches: no Redis round trip
        if not jobs:
            return False
        settings = self.settings.current()
        log.warning("%s replays %d unacknowledged job(s)", self.name, len(jobs))
        for i in range(0, len(jobs), settings.max_batch_size):
            chunk = jobs[i : i + settings.max_batch_size]
            self.run_batch(Window(chunk, min(job.arrived_ms for job in chunk), time.time(), "replay", settings))
        return True

    def batch_step(self) -> bool:
        window = collect_window(self.queue, self.name, self.settings.current, idle_block_ms=500, clock=self.queue.now)
        if window is None:
            return False
        self.run_batch(window)
        return True

    def step(self) -> bool:
        return self.retry_step() or self.recover_step() or self.batch_step()

    # --- one batch -------------------------------------------------------------------------

    def run_batch(self, window: Window) -> BatchRun | None:
        """Errors of the model fail jobs with a reason; errors of the sink or Redis propagate and the
        window stays in flight, to be retried by retry_step."""
        self.in_flight = window
        jobs = self._drop_poison(window.jobs)
        if not jobs:
            self.in_flight = None
            return None
        batch = BatchRun(
            batch_id=uuid.uuid4().hex,
            worker=self.name,
            jobs=jobs,
            settings=window.settings,
            window_opened_at=window.opened_ms / 1000,
            inference_started_at=time.time(),
        )
        self.sink.batch_started(batch)
        batch.inference_started_at = time.time()  # after the database write: inference_ms is inference only
        # A job that already crashed a worker runs alone, so it cannot take its batch-mates down again.
        isolate = len(jobs) > 1 and any(job.deliveries > 1 for job in jobs)
        outputs = self._generate_each(jobs) if isolate else self._generate(jobs)
        batch.inference_ended_at = time.time()
        for job, output in zip(jobs, outputs, strict=True):
            if isinstance(output, str):
                batch.failures[job.job_id] = output
                continue
            [generation] = output.generations
            batch.padded_tokens += output.padded_tokens
            batch.results.append(
                JobResult(job.job_id, generation.text, generation.prompt_tokens, generation.new_tokens, job.picked_at)
            )
        self.sink.batch_finished(batch)
        self.queue.ack(jobs)
        self.in_flight, self.retries = None, 0
        self.last_batch_at = time.time()
        return batch

    def _generate(self, jobs: list[QueuedJob]) -> list[BatchOutput | str]:
        """One call for the whole batch; if it fails, each job alone, so only the bad ones fail."""
        try:
            output = self.model.generate_batch(
                [job.prompt for job in jobs],
                GenerationParams(max_new_tokens=max(job.max_new_tokens for job in jobs)),
                system_prompts=[job.system_prompt or None for job in jobs],
                max_new_tokens_each=[job.max_new_tokens for job in jobs],
            )
        except Exception as error:
            if len(jobs) == 1:
                log.exception("job %s failed", jobs[0].job_id)
                return [failure_reason(error)]
            log.exception("batch of %d failed; running its jobs one by one", len(jobs))
            return self._generate_each(jobs)
        padded_each = output.padded_tokens // len(jobs)
        return [BatchOutput([generation], padded_each, output.inference_ms) for generation in output.generations]

    def _generate_each(self, jobs: list[QueuedJob]) -> list[BatchOutput | str]:
        outputs: list[BatchOutput | str] = []
        for job in jobs:
            try:
                outputs.append(
                    self.model.generate_batch(
                        [job.prompt],
                        GenerationParams(max_new_tokens=job.max_new_tokens),
                        system_prompts=[job.system_prompt or None],
                    )
                )
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

    # --- heartbeat and loop ----------------------------------------------------------------

    def heartbeat(self) -> None:
        """Say we are alive (for people and dashboards) and keep our jobs in flight from being reclaimed."""
        window = self.in_flight
        if window is not None:
            self.queue.touch(self.name, window.jobs)
        key = self.queue.worker_key(self.name)
        now = time.time()
        pipe = self.queue.redis.pipeline()
        pipe.zadd(self.queue.workers_key, {self.name: now})
        pipe.hset(
            key,
            mapping={
                "model": self.model.name,
                "dtype": self.model.dtype,
                "state": "busy" if window is not None else "idle",
                "started_at": self.started_at,
                "last_batch_at": self.last_batch_at,
                "heartbeat_at": now,
            },
        )
        pipe.expire(key, HEARTBEAT_TTL_S)
        pipe.execute()

    def _heartbeat_forever(self) -> None:
        while not self.stopping.is_set():
            try:
                self.heartbeat()
                self.queue.sync_clock()
            except Exception:
                log.exception("%s: heartbeat failed", self.name)
            self.stopping.wait(HEARTBEAT_EVERY_S)

    def run_forever(self) -> None:
        log.info("%s consumes %s", self.name, self.queue.stream)
        ready = False
        failures = 0
        while not self.stopping.is_set():
            try:
                if not ready:  # inside the retrying loop: a Redis that is down at start must not end the thread
                    self.queue.ensure_group()
                    self.queue.sync_clock()
                    self.heartbeat()  # before the first job: tests and `make run` wait for this key
                    threading.Thread(target=self._heartbeat_forever, name="heartbeat", daemon=True).start()
                    ready = True
                self.step()
                failures = 0
            except Exception:  # Redis or the database went away: wait and try again, never die
                failures += 1
                delay = min(30, 2 ** min(failures, 5))
                log.exception("%s: loop step failed, retrying in %d s", self.name, delay)
                self.stopping.wait(delay)
        log.info("%s stopped", self.name)

    def stop(self) -> None:
        self.stopping.set()
