"""The worker loop: small steps (recover, collect a window, run a batch) around one resident model.

The loop knows nothing of Django: results leave through a ResultSink that the caller provides.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Protocol

from inference.queue import JobQueue, QueuedJob
from inference.runtime import GenerationParams, ResidentModel
from inference.scheduler import SchedulerSettings, SettingsStore, Window, collect_window

log = logging.getLogger(__name__)


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

    @property
    def inference_ms(self) -> float:
        return ((self.inference_ended_at or self.inference_started_at) - self.inference_started_at) * 1000


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
        # Must exceed the longest batch, or a live worker's batch would be taken from it.
        self.reclaim_idle_ms = reclaim_idle_ms
        self.stopping = threading.Event()
        self.busy = False
        self.last_batch_at = 0.0
        self.started_at = time.time()
        self._last_heartbeat = 0.0
        self._last_reclaim = 0.0

    # --- steps: each returns True when it did work -----------------------------------------

    def recover_step(self) -> bool:
        """Run again what this worker held when it died, then what dead workers held."""
        now = time.time()
        settings = self.settings.current()
        jobs = self.queue.read_own_pending(self.name, settings.max_batch_size)
        if not jobs and now - self._last_reclaim > self.reclaim_idle_ms / 4000:
            self._last_reclaim = now
            jobs = self.queue.reclaim_idle(self.name, self.reclaim_idle_ms, settings.max_batch_size)
        if not jobs:
            return False
        log.warning("%s replays %d unacknowledged job(s)", self.name, len(jobs))
        self.run_batch(Window(jobs, min(job.arrived_ms for job in jobs), now, "replay", settings))
        return True

    def batch_step(self) -> bool:
        window = collect_window(self.queue, self.name, self.settings.current, idle_block_ms=500)
        if window is None:
            return False
        self.run_batch(window)
        return True

    def run_batch(self, window: Window) -> BatchRun | None:
        jobs = self._drop_poison(window.jobs)
        if not jobs:
            return None
        batch = BatchRun(
            batch_id=uuid.uuid4().hex,
            worker=self.name,
            jobs=jobs,
            settings=window.settings,
            window_opened_at=window.opened_ms / 1000,
            inference_started_at=time.time(),
        )
        self.busy = True
        try:
            self.sink.batch_started(batch)
            self.heartbeat(force=True)
            output = self.model.generate_batch(
                [job.prompt for job in jobs],
                GenerationParams(max_new_tokens=max(job.max_new_tokens for job in jobs)),
                system_prompts=[job.system_prompt or None for job in jobs],
                max_new_tokens_each=[job.max_new_tokens for job in jobs],
            )
            batch.inference_ended_at = time.time()
            batch.padded_tokens = output.padded_tokens
            batch.results = [
                JobResult(job.job_id, gen.text, gen.prompt_tokens, gen.new_tokens, job.picked_at)
                for job, gen in zip(jobs, output.generations, strict=True)
            ]
            self.sink.batch_finished(batch)
        except Exception as error:  # a model error fails these jobs with a reason; the worker lives on
            log.exception("batch %s failed", batch.batch_id)
            self.sink.jobs_failed([job.job_id for job in jobs], f"inference failed: {type(error).__name__}: {error}")
        finally:
            self.busy = False
            self.last_batch_at = time.time()
        self.queue.ack(jobs)
        return batch

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

    def heartbeat(self, *, force: bool = False) -> None:
        now = time.time()
        if not force and now - self._last_heartbeat < 1:
            return
        self._last_heartbeat = now
        key = f"{self.queue.prefix}:workers:{self.name}"
        self.queue.redis.hset(
            key,
            mapping={
                "model": self.model.name,
                "dtype": self.model.dtype,
                "state": "busy" if self.busy else "idle",
                "started_at": self.started_at,
                "last_batch_at": self.last_batch_at,
                "heartbeat_at": now,
            },
        )
        self.queue.redis.expire(key, 15)

    def run_forever(self) -> None:
        log.info("%s consumes %s", self.name, self.queue.stream)
        self.queue.ensure_group()
        while not self.stopping.is_set():
            try:
                self.heartbeat()
                self.recover_step() or self.batch_step()
            except Exception:  # Redis or the database went away: wait and try again, never die
                log.exception("%s: loop step failed, retrying in 1 s", self.name)
                self.stopping.wait(1)
        log.info("%s stopped", self.name)

    def stop(self) -> None:
        self.stopping.set()
