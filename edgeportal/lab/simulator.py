"""The latency lab: Poisson arrivals with network jitter, a windowed batcher on a virtual clock, per-window numbers.

No Django and no torch here: the batcher takes any `generate(prompts)` callable, so tests drive it with a fake
model and the `latency_lab` command with the resident one.

Time is a **virtual clock** driven by measured inference times. Arrivals are drawn in advance (send times from a
Poisson process, plus a uniform network jitter: `arrival = sent + jitter`, when the request reaches the node). The
batcher then walks through them the way the worker's batch loop does: a window opens at the first waiting job's
arrival and closes `window_ms` later or as soon as `max_batch_size` jobs have arrived; jobs that arrive while a
batch runs wait for the model. Each batch really runs on the model and the clock advances by the time it took.
Nobody sleeps through the gaps between arrivals, so a sweep costs only its inference time, and every window of a
sweep sees exactly the same arrivals.

Per job: queue wait = batch start - arrival (it includes the window and any wait behind a running batch; it
never includes the job's own inference), inference = batch end - batch start, total = batch end - arrival, and
end to end = batch end - sent (the client's view, jitter included).
"""

from __future__ import annotations

import json
import random
import statistics
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, TypeVar

# Prompts for a lab without the shared workload file: short factory requests like the real ones.
BUILT_IN_PROMPTS = [
    "Press line PLC P3 reports current fluctuation. Give inspection steps for the technician.",
    "Camera C3 detected a linear scratch on the steel plate surface. Write a short defect description for QA.",
    "Translate this work order into English: replace worn belt on conveyor 2 and check tension.",
    "AGV 7 stopped at dock B with an obstacle warning. Tell the operator what to check first.",
    "Summarise the shift report: two stops on line 4, one for a jammed feeder, one for a sensor fault.",
    "Oven zone 2 temperature is 12 degrees above set point. List likely causes in order of probability.",
    "Write a one-line status for the andon board: line 1 running, 3 % scrap, next changeover at 14:00.",
    "Camera C1 found a missing screw on the housing. Describe the defect for the rework station.",
]

# Default load: a little more than single requests one after another can serve, so batching has to carry the
# load and the window changes what that costs. Far below it every window just adds latency; far above it the
# queue grows without end and every window looks the same.
LOAD_FACTOR = 1.2


class WorkloadError(ValueError):
    """The workload file is missing or is not JSON lines with a `prompt` field."""


def prompts_load(path: Path) -> list[str]:
    """Prompts from a JSON-lines workload file (fields id, source, kind, language, prompt)."""
    if not path.is_file():
        raise WorkloadError(f"workload file {path} does not exist")
    prompts = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            prompt = json.loads(line)["prompt"]
        except (ValueError, KeyError, TypeError):
            raise WorkloadError(f"{path}, line {number}: expected a JSON object with a 'prompt' field") from None
        if not isinstance(prompt, str) or not prompt.strip():
            raise WorkloadError(f"{path}, line {number}: 'prompt' must be a non-empty string")
        prompts.append(prompt)
    if not prompts:
        raise WorkloadError(f"workload file {path} holds no prompts")
    return prompts


def percentile(values: Sequence[float], q: float) -> float:
    """Linear interpolation between the closest ranks (q in 0..1), as numpy's default does."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = (len(ordered) - 1) * q
    low, high = int(index), min(int(index) + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (index - low)


@dataclass(frozen=True)
class Arrival:
    index: int
    sent_ms: float
    arrival_ms: float  # sent + network jitter: when the request reached the node
    prompt: str


def arrivals_draw(
    *,
    prompts: Sequence[str],
    rate_per_s: float,
    jitter_ms: tuple[float, float] = (20.0, 200.0),
    seed: int = 0,
    count: int | None = None,
    duration_s: float | None = None,
) -> list[Arrival]:
    """Poisson send times at `rate_per_s` (exponential gaps), each delayed by a uniform jitter.

    Give `count` (that many jobs) or `duration_s` (every job sent before then). Prompts are used in turn.
    """
    if (count is None) == (duration_s is None):
        raise ValueError("give exactly one of count and duration_s")
    if rate_per_s <= 0:
        raise ValueError("rate_per_s must be positive")
    low, high = jitter_ms
    if not 0 <= low <= high:
        raise ValueError("jitter_ms must be (low, high) with 0 <= low <= high")
    rng = random.Random(seed)
    arrivals: list[Arrival] = []
    sent_ms = 0.0
    while True:
        if count is not None and len(arrivals) >= count:
            break
        if duration_s is not None and sent_ms > duration_s * 1000:
            break
        jitter = rng.uniform(low, high)
        prompt = prompts[len(arrivals) % len(prompts)]
        arrivals.append(Arrival(len(arrivals), sent_ms, sent_ms + jitter, prompt))
        sent_ms += rng.expovariate(rate_per_s) * 1000
    return arrivals


@dataclass(frozen=True)
class JobTiming:
    index: int
    sent_ms: float
    arrival_ms: float
    batch_start_ms: float
    batch_end_ms: float
    batch_number: int
    batch_size: int

    @property
    def queue_wait_ms(self) -> float:
        return self.batch_start_ms - self.arrival_ms

    @property
    def inference_ms(self) -> float:
        return self.batch_end_ms - self.batch_start_ms

    @property
    def total_ms(self) -> float:
        return self.batch_end_ms - self.arrival_ms

    @property
    def end_to_end_ms(self) -> float:
        return self.batch_end_ms - self.sent_ms

    def as_dict(self) -> dict:
        return {
            "index": self.index,
            "sent_ms": round(self.sent_ms, 1),
            "arrival_ms": round(self.arrival_ms, 1),
            "batch_start_ms": round(self.batch_start_ms, 1),
            "batch_end_ms": round(self.batch_end_ms, 1),
            "batch_size": self.batch_size,
            "queue_wait_ms": round(self.queue_wait_ms, 1),
            "inference_ms": round(self.inference_ms, 1),
            "total_ms": round(self.total_ms, 1),
            "end_to_end_ms": round(self.end_to_end_ms, 1),
        }


Generate = Callable[[list[str]], object]


def _timed_ms(generate: Generate, prompts: list[str], clock: Callable[[], float]) -> float:
    started = clock()
    generate(prompts)
    return (clock() - started) * 1000


def simulate(
    arrivals: Iterable[Arrival],
    *,
    window_ms: float,
    max_batch_size: int,
    generate: Generate,
    clock: Callable[[], float] = time.perf_counter,
    on_batch: Callable[[int], None] | None = None,
) -> list[JobTiming]:
    """Run every arrival through a windowed batcher on the virtual clock; `clock` (seconds) times `generate`."""
    if max_batch_size < 1:
        raise ValueError("max_batch_size must be at least 1")
    waiting = sorted(arrivals, key=lambda a: (a.arrival_ms, a.index))  # jitter can overtake an earlier send
    timings: list[JobTiming] = []
    model_free_ms = 0.0
    next_job = 0
    batch_number = 0
    while next_job < len(waiting):
        first = waiting[next_job]
        closes_ms = first.arrival_ms + window_ms
        last_seat = next_job + max_batch_size - 1
        if last_seat < len(waiting):
            closes_ms = min(closes_ms, waiting[last_seat].arrival_ms)  # a full batch closes the window early
        # Jobs that arrived while the model was busy are past their window already: they start when it is free.
        start_ms = max(model_free_ms, closes_ms)
        batch = [a for a in waiting[next_job : next_job + max_batch_size] if a.arrival_ms <= start_ms]
        end_ms = start_ms + _timed_ms(generate, [a.prompt for a in batch], clock)
        timings += [
            JobTiming(a.index, a.sent_ms, a.arrival_ms, start_ms, end_ms, batch_number, len(batch)) for a in batch
        ]
        model_free_ms = end_ms
        next_job += len(batch)
        batch_number += 1
        if on_batch:
            on_batch(len(batch))
    return sorted(timings, key=lambda t: t.index)


@dataclass(frozen=True)
class WindowResult:
    window_ms: int
    jobs: int
    batches: int
    throughput: float  # jobs per second, from the first arrival to the last result
    p50_ms: float  # total latency: arrival at the node -> result
    p95_ms: float
    p99_ms: float
    end_to_end_p95_ms: float  # sent -> result: what the client sees, jitter included
    queue_wait_p50_ms: float
    queue_wait_p95_ms: float
    timings: list[JobTiming] = field(repr=False)

    @property
    def mean_batch_size(self) -> float:
        return self.jobs / self.batches if self.batches else 0.0


def window_summarise(window_ms: int, timings: Sequence[JobTiming]) -> WindowResult:
    totals = [t.total_ms for t in timings]
    waits = [t.queue_wait_ms for t in timings]
    span_ms = max(t.batch_end_ms for t in timings) - min(t.arrival_ms for t in timings) if timings else 0.0
    return WindowResult(
        window_ms=window_ms,
        jobs=len(timings),
        batches=len({t.batch_number for t in timings}),
        throughput=len(timings) / (span_ms / 1000) if span_ms > 0 else 0.0,
        p50_ms=percentile(totals, 0.50),
        p95_ms=percentile(totals, 0.95),
        p99_ms=percentile(totals, 0.99),
        end_to_end_p95_ms=percentile([t.end_to_end_ms for t in timings], 0.95),
        queue_wait_p50_ms=percentile(waits, 0.50),
        queue_wait_p95_ms=percentile(waits, 0.95),
        timings=list(timings),
    )


def window_sweep(
    arrivals: Sequence[Arrival],
    *,
    windows: Sequence[int],
    max_batch_size: int,
    generate: Generate,
    clock: Callable[[], float] = time.perf_counter,
    on_batch: Callable[[int], None] | None = None,
) -> list[WindowResult]:
    """The same arrivals through each window in turn."""
    return [
        window_summarise(
            window,
            simulate(
                arrivals,
                window_ms=window,
                max_batch_size=max_batch_size,
                generate=generate,
                clock=clock,
                on_batch=on_batch,
            ),
        )
        for window in windows
    ]


@dataclass(frozen=True)
class Comparison:
    """The same prompts as single requests one after another, then as one batch."""

    jobs: int
    sequential_ms: float
    single_mean_ms: float
    batch_ms: float

    @property
    def speedup(self) -> float:
        return self.sequential_ms / self.batch_ms if self.batch_ms > 0 else 0.0

    def as_dict(self) -> dict:
        # Microsecond precision: the sweep's default rate derives from single_mean_ms, which can be a few ms.
        return {
            "jobs": self.jobs,
            "sequential_ms": round(self.sequential_ms, 3),
            "single_mean_ms": round(self.single_mean_ms, 3),
            "batch_ms": round(self.batch_ms, 3),
            "speedup": round(self.speedup, 2),
        }


def sequential_vs_batch(
    prompts: Sequence[str], *, generate: Generate, clock: Callable[[], float] = time.perf_counter
) -> Comparison:
    singles = [_timed_ms(generate, [prompt], clock) for prompt in prompts]
    batch_ms = _timed_ms(generate, list(prompts), clock)
    return Comparison(len(prompts), sum(singles), statistics.mean(singles), batch_ms)


def default_rate(single_mean_ms: float) -> float:
    """Jobs per second for a sweep, from the time one request takes alone."""
    return LOAD_FACTOR * 1000 / max(single_mean_ms, 1.0)


class WindowPoint(Protocol):
    window_ms: int
    p95_ms: float
    throughput: float


P = TypeVar("P", bound=WindowPoint)


def window_recommend(points: Iterable[P], *, target_p95_ms: float, tolerance: float = 0.02) -> P | None:
    """The window with the highest throughput whose p95 meets the target; None when no window meets it.

    Throughputs within `tolerance` (relative) of the best count as equal, and among those the lowest p95 wins
    (then the shorter window): below saturation every window serves the arrival rate, and a difference in the
    third digit is noise, not a reason to accept a worse p95.
    """
    meeting = [p for p in points if p.p95_ms <= target_p95_ms]
    if not meeting:
        return None
    best = max(p.throughput for p in meeting)
    close = [p for p in meeting if p.throughput >= best * (1 - tolerance)]
    return min(close, key=lambda p: (p.p95_ms, p.window_ms))
