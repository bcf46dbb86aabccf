"""Windowed micro-batching: scheduler settings and the collection of one window of jobs."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass

from inference.queue import JobQueue, QueuedJob

log = logging.getLogger(__name__)

# Each setting: (default, minimum, maximum). Values outside are refused, not clamped silently.
SETTING_RANGES: dict[str, tuple[int, int, int]] = {
    "window_ms": (60, 0, 10_000),
    "max_batch_size": (8, 1, 256),
}


class SettingError(ValueError):
    def __init__(self, name: str, message: str):
        super().__init__(f"{name}: {message}")
        self.name = name


def parse_setting(name: str, raw: object) -> int:
    if name not in SETTING_RANGES:
        raise SettingError(name, "unknown setting")
    _, low, high = SETTING_RANGES[name]
    try:
        value = int(str(raw).strip())
    except ValueError:
        raise SettingError(name, f"must be an integer, got {raw!r}") from None
    if not low <= value <= high:
        raise SettingError(name, f"must be between {low} and {high}, got {value}")
    return value


def env_int(name: str, default: int, *, low: int, high: int, environ: Mapping[str, str] = os.environ) -> int:
    raw = environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingError(name, f"must be an integer, got {raw!r}") from None
    if not low <= value <= high:
        raise SettingError(name, f"must be between {low} and {high}, got {value}")
    return value


@dataclass(frozen=True)
class SchedulerSettings:
    window_ms: int = SETTING_RANGES["window_ms"][0]
    max_batch_size: int = SETTING_RANGES["max_batch_size"][0]

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> SchedulerSettings:
        """EDGE_WINDOW_MS / EDGE_MAX_BATCH_SIZE; a bad value stops the worker with a clear message."""
        values = {}
        for name in SETTING_RANGES:
            raw = environ.get(f"EDGE_{name.upper()}")
            if raw:
                values[name] = parse_setting(name, raw)
        return cls(**values)

    def overridden(self, overrides: Mapping[str, str]) -> SchedulerSettings:
        """Apply live overrides from Redis; a bad stored value is logged and ignored, never fatal mid-run."""
        values = asdict(self)
        for name, raw in overrides.items():
            try:
                values[name] = parse_setting(name, raw)
            except SettingError as error:
                log.warning("ignoring scheduler override %s", error)
        return SchedulerSettings(**values)


class SettingsStore:
    """Scheduler settings: environment defaults, overridden by a Redis hash that applies from the next batch."""

    def __init__(self, queue: JobQueue, defaults: SchedulerSettings):
        self.redis = queue.redis
        self.key = f"{queue.prefix}:scheduler"
        self.defaults = defaults

    def current(self) -> SchedulerSettings:
        return self.defaults.overridden(self.redis.hgetall(self.key))

    def update(self, **values: object) -> None:
        checked = {name: parse_setting(name, raw) for name, raw in values.items()}
        self.redis.hset(self.key, mapping=checked)


@dataclass
class Window:
    jobs: list[QueuedJob]
    opened_ms: int  # arrival of the first job: the window is anchored there, not at the read
    closed_at: float
    close_reason: str  # "full", "timeout", "replay"
    settings: SchedulerSettings


def collect_window(
    queue: JobQueue,
    consumer: str,
    current_settings: Callable[[], SchedulerSettings],
    *,
    idle_block_ms: int = 1000,
    clock: Callable[[], float] = time.time,
    sleep: Callable[[float], None] = time.sleep,
) -> Window | None:
    """Wait for a first job, then add jobs until window_ms after its arrival or max_batch_size."""
    jobs = queue.wait_new(consumer, idle_block_ms)
    if not jobs:
        return None
    settings = current_settings()  # read after the wait, so a change made while idle applies to this window
    opened_ms = jobs[0].arrived_ms
    closes_at = (opened_ms + settings.window_ms) / 1000
    while True:
        # Read at least once even if the window is already over: jobs that arrived while the
        # previous batch ran are long past their window and go together at once.
        if len(jobs) < settings.max_batch_size:
            jobs += queue.read_new(consumer, settings.max_batch_size - len(jobs))
        if len(jobs) >= settings.max_batch_size:
            return Window(jobs, opened_ms, clock(), "full", settings)
        remaining = closes_at - clock()
        if remaining <= 0:
            return Window(jobs, opened_ms, clock(), "timeout", settings)
        sleep(min(0.001, remaining))
