"""The scheduler: its settings, which lane runs next, and the collection of one window of jobs."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING

from inference.batch_time import batch_estimate_ms, central_estimate_ms, tokens_per_job
from inference.integers import IntegerError, parse_int
from inference.queue import LANES, ExpiredJob, JobQueue, LanePeek, QueuedJob

if TYPE_CHECKING:
    from inference.batch import BatchRun

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Setting:
    name: str
    default: int
    low: int
    high: int
    label: str
    unit: str = "ms"


# Values outside the range are refused with a message, never clamped silently.
SETTINGS: dict[str, Setting] = {
    s.name: s
    for s in [
        Setting("window_ms", 60, 0, 10_000, "Batch window (the maximum, if adaptive)"),
        Setting("max_batch_size", 8, 1, 256, "Jobs per batch", "jobs"),
        Setting("max_batch_tokens", 4096, 16, 1_000_000, "Short lane: padded prompt tokens per batch", "tokens"),
        Setting("long_prompt_tokens", 256, 1, 100_000, "Long lane: prompts from this many tokens", "tokens"),
        Setting("long_batch_tokens", 1024, 16, 1_000_000, "Long lane: padded prompt tokens per batch", "tokens"),
        Setting("long_chunk_tokens", 256, 0, 100_000, "Long lane: prefill chunk, then short jobs (0: off)", "tokens"),
        Setting("long_share_pct", 50, 1, 100, "Long lane: most of a shared worker's time until its deadline", "%"),
        Setting("default_deadline_ms", 10_000, 100, 3_600_000, "Default deadline"),
        Setting("long_deadline_ms", 30_000, 100, 3_600_000, "Long lane: default deadline"),
        Setting("max_deadline_ms", 300_000, 100, 86_400_000, "Longest deadline a request may ask for"),
        Setting("queue_limit", 256, 1, 100_000, "Queue limit (jobs waiting, all lanes)", "jobs"),
        Setting("source_share_pct", 50, 1, 100, "Most of the queue limit one sender's waiting jobs may fill", "%"),
        Setting("priority_weight_high_ms", 8_000, 0, 3_600_000, "Head start of high priority"),
        Setting("priority_weight_normal_ms", 4_000, 0, 3_600_000, "Head start of normal priority"),
        Setting("priority_weight_low_ms", 0, 0, 3_600_000, "Head start of low priority"),
        Setting("cache_ttl_s", 3600, 0, 30 * 86_400, "Prompt cache lifetime (0: off)", "s"),
        Setting("adaptive_window", 0, 0, 1, "Adaptive window (0 off, 1 on)", ""),
    ]
}


class SettingError(ValueError):
    def __init__(self, name: str, message: str):
        super().__init__(f"{name}: {message}")
        self.name = name
        self.message = message


def parse_setting(name: str, raw: object) -> int:
    """A setting's value (an int, or its ASCII digits as Redis and forms hold them) within its range."""
    if name not in SETTINGS:
        raise SettingError(name, "unknown setting")
    setting = SETTINGS[name]
    try:
        return parse_int(raw, field=name, low=setting.low, high=setting.high)
    except IntegerError as error:
        raise SettingError(name, _without_field(error)) from None


def env_int(
    name: str, default: int, *, low: int | None, high: int | None, environ: Mapping[str, str] = os.environ
) -> int:
    """An integer from the environment; surrounding whitespace (an environment file's) is ignored."""
    raw = environ.get(name, "").strip()
    if not raw:
        return default
    try:
        return parse_int(raw, field=name, low=low, high=high)
    except IntegerError as error:
        raise SettingError(name, _without_field(error)) from None


def _without_field(error: IntegerError) -> str:
    """SettingError puts the name in front itself."""
    return error.message.removeprefix(f"{error.field} ")


@dataclass(frozen=True)
class SchedulerSettings:
    window_ms: int = SETTINGS["window_ms"].default
    max_batch_size: int = SETTINGS["max_batch_size"].default
    max_batch_tokens: int = SETTINGS["max_batch_tokens"].default
    long_prompt_tokens: int = SETTINGS["long_prompt_tokens"].default
    long_batch_tokens: int = SETTINGS["long_batch_tokens"].default
    long_chunk_tokens: int = SETTINGS["long_chunk_tokens"].default
    long_share_pct: int = SETTINGS["long_share_pct"].default
    default_deadline_ms: int = SETTINGS["default_deadline_ms"].default
    long_deadline_ms: int = SETTINGS["long_deadline_ms"].default
    max_deadline_ms: int = SETTINGS["max_deadline_ms"].default
    queue_limit: int = SETTINGS["queue_limit"].default
    source_share_pct: int = SETTINGS["source_share_pct"].default
    priority_weight_high_ms: int = SETTINGS["priority_weight_high_ms"].default
    priority_weight_normal_ms: int = SETTINGS["priority_weight_normal_ms"].default
    priority_weight_low_ms: int = SETTINGS["priority_weight_low_ms"].default
    cache_ttl_s: int = SETTINGS["cache_ttl_s"].default
    adaptive_window: int = SETTINGS["adaptive_window"].default

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> SchedulerSettings:
        """EDGE_WINDOW_MS, EDGE_MAX_BATCH_SIZE, ...: a bad value stops the process with a clear message."""
        values = {}
        for name in SETTINGS:
            raw = environ.get(f"EDGE_{name.upper()}", "").strip()
            if raw:
                try:
                    values[name] = parse_setting(name, raw)
                except SettingError as error:
                    raise SettingError(f"EDGE_{name.upper()}", error.message) from None
        return cls(**values)

    def overridden(self, overrides: Mapping[str, str]) -> SchedulerSettings:
        """Apply live overrides from Redis; a bad stored value is logged and ignored, never fatal mid-run."""
        values = asdict(self)
        for name, raw in overrides.items():
            if name.startswith("_"):  # bookkeeping such as _version
                continue
            try:
                values[name] = parse_setting(name, raw)
            except SettingError as error:
                log.warning("ignoring scheduler override %s", error)
        return SchedulerSettings(**values)

    def source_share(self) -> int | None:
        """How many jobs one sender may have waiting: its share of the queue limit (at least one); None
        at 100 %, where only the queue limit applies."""
        if self.source_share_pct >= 100:
            return None
        return max(1, self.queue_limit * self.source_share_pct // 100)

    def head_start_ms(self, priority: str) -> int:
        return getattr(self, f"priority_weight_{priority}_ms")

    def default_deadline_for(self, lane: str) -> int:
        """A job's deadline when its request, source and template name none: a long prompt has its own,
        longer by default, so its batch can stand aside for short ones (see BatchWorker._short_may_go)."""
        deadline = self.long_deadline_ms if lane == "long" else self.default_deadline_ms
        return min(deadline, self.max_deadline_ms)

    def lane_for(self, prompt_tokens: int) -> str:
        return "long" if prompt_tokens >= self.long_prompt_tokens else "short"

    def batch_tokens(self, lane: str) -> int:
        return self.long_batch_tokens if lane == "long" else self.max_batch_tokens


class SettingsStore:
    """Scheduler settings: environment defaults, overridden by a Redis hash that applies from the next window.

    The hash also holds _version, raised on every save, so workers can say which settings they applied.
    """

    def __init__(self, queue: JobQueue, defaults: SchedulerSettings):
        self.redis = queue.redis
        self.key = f"{queue.prefix}:scheduler"
        self.defaults = defaults

    def current(self) -> SchedulerSettings:
        return self.defaults.overridden(self.redis.hgetall(self.key))

    def current_with_version(self) -> tuple[SchedulerSettings, int]:
        stored = self.redis.hgetall(self.key)
        return self.defaults.overridden(stored), int(stored.get("_version", 0))

    def update(self, **values: object) -> int:
        """Store overrides (checked first, all or nothing); returns the new version."""
        checked = {name: parse_setting(name, raw) for name, raw in values.items()}
        pipe = self.redis.pipeline(transaction=True)
        if checked:
            pipe.hset(self.key, mapping=checked)
        pipe.hincrby(self.key, "_version", 1)
        return int(pipe.execute()[-1])

    def publish(self, overrides: Mapping[str, object], version: int) -> bool:
        """Put a full set of overrides with its version (the database's), in one atomic step, unless Redis
        holds that version or a newer one: a save published late never undoes a newer one. True if written."""
        checked = {name: parse_setting(name, raw) for name, raw in overrides.items()}
        flat = [item for pair in checked.items() for item in pair]
        return bool(self.redis.eval(_PUBLISH, 1, self.key, version, *flat))


# KEYS: the settings hash. ARGV: version, then name/value pairs.
_PUBLISH = """
if tonumber(redis.call('HGET', KEYS[1], '_version') or '0') >= tonumber(ARGV[1]) then return 0 end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], '_version', ARGV[1], unpack(ARGV, 2))
return 1
"""


# --- which lane, and how long a window --------------------------------------------------------


def jobs_per_batch(settings: SchedulerSettings, lane: str, per_job_tokens: float) -> int:
    """How many jobs of this many padded tokens each one batch of the lane holds (at least one)."""
    return max(1, min(settings.max_batch_size, int(settings.batch_tokens(lane) // max(1.0, per_job_tokens))))


def full_batch_tokens(settings: SchedulerSettings, measurements: Mapping[str, float], lane: str) -> int | None:
    """The padded tokens of a full batch of the lane's usual jobs (None until a job's tokens are measured)."""
    per_job = tokens_per_job(measurements, lane)
    return None if per_job is None else int(jobs_per_batch(settings, lane, per_job) * per_job)


def full_batch_estimate_ms(settings: SchedulerSettings, measurements: Mapping[str, float], lane: str) -> float:
    """A full batch of the lane's usual jobs, at its likely upper bound: how admission plans the batches
    ahead of a job."""
    return batch_estimate_ms(measurements, lane, full_batch_tokens(settings, measurements, lane))


def full_batch_central_ms(settings: SchedulerSettings, measurements: Mapping[str, float], lane: str) -> float:
    """A full batch of the lane's usual jobs as things stand, without the margin: expiry ends a waiting
    job only when even this would finish after its deadline. Admission always plans at least this much
    (its own batch is at least as big, with the margin or, for a probe, without), so a job it admits is
    never expired at once."""
    return central_estimate_ms(measurements, lane, full_batch_tokens(settings, measurements, lane))


def batch_central_by_size(settings: SchedulerSettings, measurements: Mapping[str, float], lane: str) -> list[float]:
    """A batch of 1, 2, … jobs of the lane's usual size, up to a full one, as things stand (central): the
    lease and expiry judge a job by the batch it would run in now, which is not always full. A lone job
    behind a running batch runs alone next, in about half a full batch's time on the default model.
    Never more than a full batch (full_batch_central_ms), so a job admission admits is not expired for
    it. One number for all sizes until a job's tokens are known."""
    per_job = tokens_per_job(measurements, lane)
    full_ms = full_batch_central_ms(settings, measurements, lane)
    if per_job is None:
        return [full_ms]
    per_batch = jobs_per_batch(settings, lane, per_job)
    return [min(full_ms, central_estimate_ms(measurements, lane, int(k * per_job))) for k in range(1, per_batch + 1)]


def long_start_by_ms(peek: LanePeek, measurements: Mapping[str, float]) -> float:
    """When the long lane must start at the latest (Redis clock, ms) so that every job waiting in it can
    still run back to back by its deadline: the head's deadline less one batch per waiting job. Later jobs
    have later deadlines (or a higher priority, and then the head start they got is theirs to use), so
    this is never later than needed."""
    per_job = tokens_per_job(measurements, "long")
    each_ms = batch_estimate_ms(measurements, "long", None if per_job is None else int(per_job))
    return peek.head_deadline_ms - peek.waiting * each_ms


def choose_lane(
    peeks: Mapping[str, LanePeek], measurements: Mapping[str, float], window_ms: int, *, long_stands_aside: bool = False
) -> str | None:
    """Short jobs first; the long lane runs when the short lane is empty, or when waiting for one more
    short batch would make one of its jobs miss its deadline. Neither starves: short batches are only
    put off by a long batch that had to run, and long jobs run at the latest when they must.

    Where a long batch stands aside for short ones (long_stands_aside: the worker runs it in steps), a
    long job with time to share, as much again as its own work, starts at once: its pace then lets short
    batches through while it runs (BatchWorker._short_may_go). Started late, it would have no slack
    left to share, and run in one piece while short jobs wait. Without that much slack it waits as
    above: starting such jobs at once was measured worse (2.84x the short-only p95 at 0.5x load), as a
    few long prompts arriving together ran back to back."""
    waiting = [lane for lane in LANES if lane in peeks and peeks[lane].waiting]
    if len(waiting) < 2:
        return waiting[0] if waiting else None
    long = peeks["long"]
    slack_ms = long_start_by_ms(long, measurements) - long.now_ms
    if slack_ms < batch_estimate_ms(measurements, "short") + window_ms:
        return "long"
    if long_stands_aside and slack_ms >= batch_estimate_ms(measurements, "long") and measurements.get("batch_ms:long"):
        return "long"
    return "short"


def effective_window(settings: SchedulerSettings, measurements: Mapping[str, float], now_ms: int) -> tuple[int, str]:
    """The window to wait, and why. Fixed unless adaptive: then as long as it takes the measured arrival
    rate to fill a batch, at most window_ms, and none when arrivals are too sparse to gain anything."""
    if not settings.adaptive_window:
        return settings.window_ms, "fixed"
    gap = measurements.get("arrival_gap_ms")
    last = measurements.get("last_arrival_ms")
    if gap is None or last is None:
        return settings.window_ms, "adaptive: no arrival rate measured yet, using the maximum"
    gap = max(gap, now_ms - last)  # arrivals that stopped count as a slower rate
    if gap >= settings.window_ms:
        return 0, f"adaptive: one arrival per {gap:.0f} ms, waiting would not add a job"
    fill_ms = gap * (settings.max_batch_size - 1)
    if fill_ms < settings.window_ms:
        return int(fill_ms), f"adaptive: one arrival per {gap:.0f} ms fills a batch in {fill_ms:.0f} ms"
    return settings.window_ms, f"adaptive: one arrival per {gap:.0f} ms, steady load, the maximum window"


@dataclass(eq=False)  # a worker holds windows by identity: two may hold equal-looking jobs
class Window:
    jobs: list[QueuedJob]
    lane: str
    opened_ms: int  # arrival of the job that opened it: the window is anchored there, not at the read
    closed_at: float
    close_reason: str  # "full", "tokens", "timeout", "deadline", "replay"
    settings: SchedulerSettings
    window_ms: int  # the window it waited with (the effective one, if adaptive)
    window_reason: str = "fixed"
    expired: list[ExpiredJob] | None = None  # found while leasing it; ended by run_batch
    measurements: Mapping[str, float] = field(default_factory=dict)  # batch times as read to collect it
    batch: BatchRun | None = None  # its outputs, once the model ran it (until they are stored)
    storage_down: bool = False  # storing them failed because the database was out of reach


# How much longer a window waits for jobs being admitted to its lane: more than a submission takes in
# a burst on two cores (BENCHMARKS.md, web server under bursts), and short against a batch.
ARRIVING_WAIT_MS = 250


def collect_window(
    queue: JobQueue,
    worker: str,
    current_settings: Callable[[], SchedulerSettings],
    *,
    lanes: tuple[str, ...] = LANES,
    lease_ms: int = 60_000,
    long_stands_aside: bool = False,
    sleep: Callable[[float], None] = time.sleep,
) -> Window | None:
    """Pick a lane, wait out its window (anchored at the head job's arrival), then lease the batch.

    current_settings is called on every poll, so a saved change applies to the window in progress.

    The window closes at window_ms (up to ARRIVING_WAIT_MS later while requests hold places in the lane:
    their jobs are on their way), when max_batch_size jobs or the lane's token budget are waiting, or early when
    waiting longer would make the head job miss its deadline. Returns None when no
    lane has work, or when every job was expired or taken by another worker meanwhile.
    """
    started = time.time()
    settings = current_settings()
    measurements = queue.measurements()
    peeks = {lane: queue.peek(lane, settings.max_batch_size) for lane in lanes}
    window_ms, why = effective_window(settings, measurements, max(p.now_ms for p in peeks.values()))
    lane = choose_lane(peeks, measurements, window_ms, long_stands_aside=long_stands_aside)
    if lane is None:
        return None
    budget = settings.batch_tokens(lane)
    peek = peeks[lane]
    estimate = full_batch_central_ms(settings, measurements, lane)
    opened_ms = peek.head_arrived_ms
    while True:
        closes_ms = opened_ms + window_ms
        if peek.held:
            # Requests are being admitted to the lane: admission planned their jobs into this batch (they
            # count as ahead of later ones), so wait a little for them to arrive. Without it, a burst on a
            # busy machine (its requests take longer than the window) left admitted jobs for a second
            # batch they had no time for. The head's deadline still closes it early (below).
            closes_ms += max(window_ms, ARRIVING_WAIT_MS)
        if peek.waiting >= settings.max_batch_size:
            reason = "full"
        elif peek.padded_tokens >= budget:
            reason = "tokens"
        elif peek.now_ms >= closes_ms:
            reason = "timeout"
        elif closes_ms + estimate > peek.head_deadline_ms:
            reason = "deadline"
        else:
            sleep(min(0.001, (closes_ms - peek.now_ms) / 1000))
            settings = current_settings()  # a change saved now shortens or ends this window
            window_ms = settings.window_ms if not settings.adaptive_window else min(window_ms, settings.window_ms)
            peek = queue.peek(lane, settings.max_batch_size)
            if peek.waiting == 0:
                return None  # another worker took them
            continue
        break
    by_size = batch_central_by_size(settings, measurements, lane)
    jobs, expired = queue.take(
        lane, worker=worker, max_count=settings.max_batch_size, max_tokens=budget, est_ms=by_size, lease_ms=lease_ms
    )
    for job in jobs:
        # In the window from when this worker began collecting it, or from the job's arrival if later:
        # queue wait ends there, window wait runs from there to the batch start.
        job.picked_at = max(started, job.enqueued_ms / 1000 - queue.clock_offset)
    return Window(jobs, lane, opened_ms, time.time(), reason, settings, window_ms, why, expired, measurements)
