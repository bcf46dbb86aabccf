"""The Celery bootstep: load the model once when the worker starts, run the batch loop in a thread."""

from __future__ import annotations

import logging
import threading

from celery import bootsteps

from inference.queue import JobQueue
from inference.scheduler import SchedulerSettings, SettingError, SettingsStore, env_int
from inference.worker import BatchWorker

log = logging.getLogger(__name__)


class BatchLoopStep(bootsteps.StartStopStep):
    """Subclasses say where results go (make_sink) and which Redis to use (redis_settings)."""

    requires = {"celery.worker.components:Pool"}

    def __init__(self, worker, **kwargs):
        super().__init__(worker, **kwargs)
        self.loop: BatchWorker | None = None
        self.thread: threading.Thread | None = None

    def make_sink(self):
        raise NotImplementedError

    def redis_settings(self) -> tuple[str, str]:
        raise NotImplementedError

    def start(self, worker) -> None:
        from inference.runtime import ModelConfigError, load_model_from_env  # torch: only in the worker

        try:
            defaults = SchedulerSettings.from_env()
            reclaim_idle_ms = env_int("EDGE_RECLAIM_IDLE_MS", 60_000, low=1_000, high=3_600_000)
            model = load_model_from_env()
        except (SettingError, ModelConfigError) as error:
            log.critical("worker configuration error: %s", error)  # one clear line above Celery's traceback
            raise
        url, prefix = self.redis_settings()
        queue = JobQueue.from_url(url, prefix)
        self.loop = BatchWorker(
            model=model,
            queue=queue,
            sink=self.make_sink(),
            settings=SettingsStore(queue, defaults),
            name=worker.hostname,
            reclaim_idle_ms=reclaim_idle_ms,
        )
        self.thread = threading.Thread(target=self.loop.run_forever, name="batch-loop", daemon=True)
        self.thread.start()

    def stop(self, worker) -> None:
        if self.loop is not None:
            self.loop.stop()
        if self.thread is not None:
            self.thread.join(timeout=120)  # let the batch in flight finish; unacked jobs replay anyway
