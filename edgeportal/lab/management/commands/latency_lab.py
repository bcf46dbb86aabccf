"""`manage.py latency_lab`: single requests vs one batch, then a window sweep under Poisson arrivals, stored."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.urls import reverse
from tqdm import tqdm

from edgeportal.lab.services import labrun_record
from edgeportal.lab.simulator import (
    BUILT_IN_PROMPTS,
    LOAD_FACTOR,
    WindowResult,
    WorkloadError,
    arrivals_draw,
    default_rate,
    prompts_load,
    sequential_vs_batch,
    window_recommend,
    window_sweep,
)
from inference.generation import GenerationParams
from inference.integers import IntegerError, parse_int

DEFAULT_WORKLOAD = "../shared/workload/factory_prompts.jsonl"  # relative to the repository root
DEFAULT_JOBS = 40
MAX_JOBS = 10_000
# The ranges the worker accepts for EDGE_WINDOW_MS and EDGE_MAX_BATCH_SIZE.
WINDOW_MS_RANGE = (0, 10_000)
MAX_BATCH_SIZE_RANGE = (1, 256)


def _int_in(low: int, high: int):
    def parse(raw: str) -> int:
        try:
            return parse_int(raw, field="value", low=low, high=high)
        except IntegerError as error:
            raise argparse.ArgumentTypeError(error.message.removeprefix("value ")) from None

    return parse


def _positive_float(high: float):
    def parse(raw: str) -> float:
        try:
            value = float(raw)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be a number, got {raw!r}") from None
        if not 0 < value <= high:  # also refuses nan
            raise argparse.ArgumentTypeError(f"must be above 0 and at most {high:g}, got {raw}")
        return value

    return parse


def windows_list(raw: str) -> list[int]:
    """`0,20,60`: distinct window lengths in ms, within the scheduler's own range; sorted."""
    parse = _int_in(*WINDOW_MS_RANGE)
    parts = [part.strip() for part in raw.split(",")]
    if not raw.strip() or any(not part for part in parts):
        raise argparse.ArgumentTypeError(f"give window lengths in ms separated by commas, like 0,20,60; got {raw!r}")
    windows = [parse(part) for part in parts]
    if len(set(windows)) != len(windows):
        raise argparse.ArgumentTypeError(f"each window may appear once, got {raw!r}")
    return sorted(windows)


def jitter_range(raw: str) -> tuple[float, float]:
    """`20,200`: the network delay added to each arrival, uniform between the two, in ms."""
    parts = raw.split(",")
    try:
        low, high = (float(part) for part in parts)
    except ValueError:
        raise argparse.ArgumentTypeError(f"give two numbers of ms, like 20,200; got {raw!r}") from None
    if not 0 <= low <= high <= 60_000:
        raise argparse.ArgumentTypeError(f"need 0 <= low <= high <= 60000 ms, got {raw!r}")
    return low, high


def _ms(value: float) -> str:
    return f"{value:.0f}"


def results_table(results: list[WindowResult]) -> str:
    header = (
        f"{'window ms':>9}  {'jobs':>5}  {'mean batch':>10}  {'jobs/s':>7}  {'p50 ms':>7}  {'p95 ms':>7}  "
        f"{'p99 ms':>7}  {'queue wait p95':>14}  {'sent->done p95':>14}"
    )
    lines = [header, "-" * len(header)]
    for r in results:
        lines.append(
            f"{r.window_ms:>9}  {r.jobs:>5}  {r.mean_batch_size:>10.2f}  {r.throughput:>7.2f}  {_ms(r.p50_ms):>7}  "
            f"{_ms(r.p95_ms):>7}  {_ms(r.p99_ms):>7}  {_ms(r.queue_wait_p95_ms):>14}  "
            f"{_ms(r.end_to_end_p95_ms):>14}"
        )
    return "\n".join(lines)


class Command(BaseCommand):
    help = (
        "Measure the resident model: single requests one after another vs one batch, then a window sweep under "
        "Poisson arrivals with network jitter (a virtual clock advanced by the real inference times). "
        "Stores the run for the /lab/ pages and prints a table."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--windows", type=windows_list, default=[0, 20, 60, 120, 250], help="window lengths in ms (0,20,60,...)"
        )
        amount = parser.add_mutually_exclusive_group()
        amount.add_argument("--jobs", type=_int_in(1, MAX_JOBS), help=f"jobs per window (default {DEFAULT_JOBS})")
        amount.add_argument("--duration", type=_positive_float(3600), help="seconds of arrivals per window")
        parser.add_argument(
            "--rate",
            type=_positive_float(10_000),
            help=f"arrivals per second (default: {LOAD_FACTOR} x what single requests one after another serve)",
        )
        parser.add_argument("--jitter-ms", type=jitter_range, default=(20.0, 200.0), help="network delay range")
        parser.add_argument("--max-batch-size", type=_int_in(*MAX_BATCH_SIZE_RANGE), default=8)
        parser.add_argument("--max-new-tokens", type=_int_in(1, 1024), default=settings.EDGE_DEFAULT_MAX_NEW_TOKENS)
        parser.add_argument("--target-p95-ms", type=_positive_float(3_600_000), help="recommend a window for it")
        parser.add_argument("--seed", type=int, default=0, help="seed of the arrivals (default 0)")
        parser.add_argument("--workload", help=f"JSON-lines prompts (default {DEFAULT_WORKLOAD}, else built-in)")
        parser.add_argument("--notes", default="", help="stored with the run")
        parser.add_argument("--no-progress", action="store_true", help="no progress bar (also off without a TTY)")

    def handle(self, *args, **options):
        if options["rate"]:
            self._check_job_count(options["duration"], options["rate"])  # before the model takes a minute to load
        prompts, workload = self._prompts(options["workload"])
        model = self._load_model()
        params = GenerationParams(max_new_tokens=options["max_new_tokens"])

        def generate(batch: list[str]):
            return model.generate_batch(batch, params)

        size = options["max_batch_size"]
        identity = model.identity
        self.stdout.write(
            f"model {identity.model} ({identity.dtype} on {identity.device}); {len(prompts)} prompts from {workload}"
        )
        self.stdout.write(f"timing {size} single requests one after another, then one batch of {size} ...")
        comparison = sequential_vs_batch([prompts[i % len(prompts)] for i in range(size)], generate=generate)
        self.stdout.write(
            f"sequential: {comparison.sequential_ms:.0f} ms ({comparison.single_mean_ms:.0f} ms each); "
            f"one batch: {comparison.batch_ms:.0f} ms; {comparison.speedup:.2f}x"
        )

        rate = options["rate"] or default_rate(comparison.single_mean_ms)
        self._check_job_count(options["duration"], rate)
        count = None if options["duration"] else options["jobs"] or DEFAULT_JOBS
        arrivals = arrivals_draw(
            prompts=prompts,
            rate_per_s=rate,
            jitter_ms=options["jitter_ms"],
            seed=options["seed"],
            count=count,
            duration_s=options["duration"],
        )
        windows = options["windows"]
        self.stdout.write(
            f"sweep: {len(arrivals)} jobs per window, Poisson arrivals at {rate:.2f} jobs/s"
            f"{'' if options['rate'] else ' (from the single-request time)'}, jitter "
            f"{options['jitter_ms'][0]:g}-{options['jitter_ms'][1]:g} ms, max batch size {size}, virtual clock"
        )
        quiet = options["no_progress"] or not sys.stderr.isatty()
        with tqdm(total=len(windows) * len(arrivals), unit="job", disable=quiet, file=sys.stderr) as bar:
            results = window_sweep(
                arrivals, windows=windows, max_batch_size=size, generate=generate, on_batch=bar.update
            )

        run = labrun_record(
            model_name=model.identity.model,
            dtype=model.identity.dtype,
            parameters={
                "windows": windows,
                "rate_per_s": round(rate, 4),
                "rate_given": options["rate"] is not None,
                "jobs": len(arrivals),
                "duration_s": options["duration"],
                "jitter_ms": list(options["jitter_ms"]),
                "max_batch_size": size,
                "max_new_tokens": options["max_new_tokens"],
                "seed": options["seed"],
                "workload": workload,
                "clock": "virtual",
            },
            comparison=comparison,
            results=results,
            target_p95_ms=options["target_p95_ms"],
            notes=options["notes"],
        )
        self.stdout.write("")
        self.stdout.write(results_table(results))
        self.stdout.write("")
        if options["target_p95_ms"]:
            self.stdout.write(self._recommendation(results, options["target_p95_ms"]))
        self.stdout.write(f"stored as lab run {run.pk}: {reverse('lab:detail', args=[run.pk])}")

    def _check_job_count(self, duration_s: float | None, rate: float) -> None:
        if duration_s and duration_s * rate > MAX_JOBS:
            raise CommandError(
                f"--duration {duration_s:g} at {rate:.2f} jobs/s makes about {duration_s * rate:.0f} jobs per window; "
                f"the limit is {MAX_JOBS}: shorten the duration or lower the rate"
            )

    def _prompts(self, workload: str | None) -> tuple[list[str], str]:
        if workload is None:
            default = (Path(settings.BASE_DIR) / DEFAULT_WORKLOAD).resolve()
            if not default.is_file():
                return BUILT_IN_PROMPTS, "the built-in list"
            workload = str(default)
        try:
            return prompts_load(Path(workload)), Path(workload).name
        except WorkloadError as error:
            raise CommandError(f"--workload: {error}") from None

    def _load_model(self):
        # Imported here: torch and transformers stay out of every process that never runs this command.
        from inference.model_files import ModelConfigError
        from inference.runtime import load_engine_from_env

        try:
            return load_engine_from_env()  # loads EDGE_MODEL / EDGE_DTYPE / EDGE_DEVICE as a worker does, and warms up
        except ModelConfigError as error:
            raise CommandError(str(error)) from None

    def _recommendation(self, results: list[WindowResult], target_p95_ms: float) -> str:
        best = window_recommend(results, target_p95_ms=target_p95_ms)
        if best is None:
            lowest = min(results, key=lambda r: r.p95_ms)
            return (
                f"no window meets p95 <= {target_p95_ms:g} ms; the lowest p95 was {lowest.p95_ms:.0f} ms "
                f"(window {lowest.window_ms} ms)"
            )
        return (
            f"recommended window for p95 <= {target_p95_ms:g} ms: {best.window_ms} ms "
            f"({best.throughput:.2f} jobs/s, p95 {best.p95_ms:.0f} ms, mean batch {best.mean_batch_size:.2f})"
        )
