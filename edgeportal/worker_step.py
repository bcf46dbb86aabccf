"""The Celery bootstep: load the model once when the worker starts, run the batch loop in a thread."""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

import redis
from celery import bootsteps

from inference.engine import EngineIdentity
from inference.lanes import LANES
from inference.model_files import ModelConfigError
from inference.pools import Pool, engine_conflict
from inference.settings import SchedulerSettings, SettingError, env_int
from inference.store.queue import WORKER_ALIVE_S, JobQueue, SettingsStore
from inference.warm_up import measure_baseline
from inference.worker import BatchWorker, steps_long

log = logging.getLogger(__name__)


def worker_lanes(raw: str) -> tuple[str, ...]:
    """EDGE_WORKER_LANES: the lanes this worker serves, e.g. "long" for a worker kept for long prompts."""
    lanes = tuple(lane.strip() for lane in raw.split(",") if lane.strip()) or LANES
    unknown = [lane for lane in lanes if lane not in LANES]
    if unknown:
        raise SettingError("EDGE_WORKER_LANES", f"unknown lane(s) {', '.join(unknown)}; use short, long or both")
    return lanes


AUTOGROUP = Path("/proc/self/autogroup")


def lower_cpu_priority(nice: int) -> None:
    """Let the web server and Redis go first on a shared CPU, so a refusal (429) or a status page never
    waits behind a batch. Linux keeps a nice value per thread: call this in the batch thread before the
    model loads, and the threads it starts (torch's, the timer) inherit it. Never raises it back."""
    if nice > os.getpriority(os.PRIO_PROCESS, 0):
        os.setpriority(os.PRIO_PROCESS, 0, nice)
    lower_session_priority(nice)


def lower_session_priority(nice: int, autogroup: Path = AUTOGROUP) -> bool:
    """The same for the worker's session, where the kernel groups tasks by session (autogroup, on by default
    on many distributions): it shares the CPU between sessions first, so a nice value counts only within its
    own. `make run` starts the web and the worker each in a session of its own, and a worker niced alone still
    took half the CPU from the web (measured). The kernel groups only tasks of the root CPU control group this
    way; under systemd with its CPU controller on, each unit has a group of its own, and the worker unit's
    CPUWeight (which turns the controller on) does it (docs/deploy). Only a worker that leads its session
    changes it (in a shell's session, it would lower the shell's other programs too). Whether it did."""
    if os.getsid(0) != os.getpid():
        return False
    try:
        current = int(autogroup.read_text().rsplit("nice", 1)[1])
        if nice > current:
            autogroup.write_text(str(nice))
            return True
    except (OSError, ValueError, IndexError):  # no autogroups in this kernel, or not allowed here
        pass
    return False


def _warm_up_sizes(store: SettingsStore, new_tokens: int, lanes: tuple[str, ...]) -> dict:
    """The batch size and prefill chunk the warm-up times, and whether long batches will run in steps beside
    short ones: the live settings, or the defaults without Redis."""
    try:
        settings = store.current()
    except redis.RedisError:
        settings = store.defaults
    return {
        "max_batch_size": settings.max_batch_size,
        "new_tokens": new_tokens,
        "chunk_tokens": settings.long_chunk_tokens or 256,
        "short_between": steps_long(settings, lanes),
    }


def pool_queue(url: str, base: str, identity: EngineIdentity) -> JobQueue:
    """The queue of the pool this worker serves: its model on its class of device (inference.pools)."""
    pool = Pool(identity.model, identity.device_class)
    return JobQueue.from_url(url, pool.prefix(base), base=base, pool=pool.name)


def refuse_a_second_engine(queue: JobQueue, identity: EngineIdentity, name: str) -> None:
    """Stop a worker whose engine or weights differ from the live workers' of its pool (engine_conflict).
    With Redis unreachable there is no one to compare with: the worker starts, and waits for Redis as before."""
    try:
        workers = queue.workers()
    except redis.RedisError as error:
        log.warning("could not read the pool's workers (%s): their engines were not compared", error)
        return
    conflict = engine_conflict(queue.pool, identity.engine, workers, me=name, now=queue.now(), alive_s=WORKER_ALIVE_S,
                               dtype=identity.dtype)  # fmt: skip
    if conflict:
        raise ModelConfigError(conflict)


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

    def engine_for_jobs(self, model):
        """The engine the loop runs: the model itself, or a wrapper that adds to it (candidates)."""
        return model

    def start(self, worker) -> None:
        """Load the model in the batch thread itself and wait until it is ready (or failed).

        Measured here: generate() ran about 25 % slower in a thread other than the one whose OpenMP
        team loaded and warmed up the model, so the thread that runs batches also loads the model.
        """
        try:
            defaults = SchedulerSettings.from_env()
            reclaim_idle_ms = env_int("EDGE_RECLAIM_IDLE_MS", 60_000, low=1_000, high=3_600_000)
            lanes = worker_lanes(os.environ.get("EDGE_WORKER_LANES", ""))
            nice = env_int("EDGE_WORKER_NICE", 10, low=0, high=19)
            new_tokens = env_int("EDGE_DEFAULT_MAX_NEW_TOKENS", 32, low=1, high=100_000)
        except SettingError as error:
            log.critical("worker configuration error: %s", error)  # one clear line above Celery's traceback
            raise
        url, base = self.redis_settings()
        sink = self.make_sink()
        loaded = threading.Event()
        failure: list[Exception] = []

        def load_and_run() -> None:
            lower_cpu_priority(nice)
            try:  # an import that fails too must end the start, not leave it waiting for `loaded` forever
                from inference.runtime import load_engine_from_env  # torch: only in the worker

                model = load_engine_from_env()
                queue = pool_queue(url, base, model.identity)
                refuse_a_second_engine(queue, model.identity, worker.hostname)
                store = SettingsStore(queue, defaults)
                self.loop = BatchWorker(
                    model=self.engine_for_jobs(model),
                    queue=queue,
                    sink=sink,
                    settings=store,
                    name=worker.hostname,
                    lanes=lanes,
                    reclaim_idle_ms=reclaim_idle_ms,
                    baseline=measure_baseline(model, **_warm_up_sizes(store, new_tokens, lanes)),
                )
            except Exception as error:
                failure.append(error)
                return
            finally:
                loaded.set()
            self.loop.run_forever()

        self.thread = threading.Thread(target=load_and_run, name="batch-loop", daemon=True)
        self.thread.start()
        loaded.wait()
        if failure:
            if isinstance(failure[0], ModelConfigError):
                log.critical("worker configuration error: %s", failure[0])
            raise failure[0]

    def stop(self, worker) -> None:
        if self.loop is not None:
            self.loop.stop()
        if self.thread is not None:
            self.thread.join(timeout=120)  # let the batch in flight finish; unacked jobs replay anyway
