"""Batching benchmark: raw generate_batch vs the full pipeline (HTTP API -> Redis -> worker -> database).

Run with `make bench` (or `.venv/bin/python bench/batching.py --jobs 32`). It writes BENCHMARKS.md.
Everything is measured in this one run on this machine, side by side, with the default model.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
WORKLOAD = ROOT.parent / "shared" / "workload" / "factory_prompts.jsonl"
BENCH_DB = ROOT / ".cache" / "bench.sqlite3"
PREFIX = f"edgeportal-bench:{uuid.uuid4().hex[:8]}"
MAX_NEW_TOKENS = 32
WINDOW_MS = 60

os.environ.update(
    DJANGO_SETTINGS_MODULE="edgeportal.settings",
    DATABASE_URL=f"sqlite:///{BENCH_DB}",
    EDGE_REDIS_PREFIX=PREFIX,
    EDGE_DEFAULT_MAX_NEW_TOKENS=str(MAX_NEW_TOKENS),
    EDGE_CACHE_ENABLED="false",  # this benchmark measures batching: every request must reach the model
    EDGE_RATE_LIMIT_PER_MINUTE="0",
    DEBUG="false",
    SECRET_KEY="bench-only",
)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = (len(ordered) - 1) * q
    low, high = int(index), min(int(index) + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (index - low)


def load_prompts(count: int) -> list[str]:
    lines = [json.loads(line)["prompt"] for line in WORKLOAD.read_text().splitlines() if line.strip()]
    return [lines[i % len(lines)] for i in range(count)]


# --- raw ------------------------------------------------------------------------------------


def raw_run(model, prompts: list[str], batch_size: int) -> dict:
    from inference.runtime import GenerationParams

    params = GenerationParams(max_new_tokens=MAX_NEW_TOKENS)
    batch_seconds, texts = [], []
    started = time.perf_counter()
    for i in range(0, len(prompts), batch_size):
        t = time.perf_counter()
        output = model.generate_batch(prompts[i : i + batch_size], params)
        batch_seconds.append(time.perf_counter() - t)
        texts += [g.text for g in output.generations]
    elapsed = time.perf_counter() - started
    return {
        "batch_size": batch_size,
        "throughput": len(prompts) / elapsed,
        "p50": percentile(batch_seconds, 0.5),
        "p95": percentile(batch_seconds, 0.95),
        "p99": percentile(batch_seconds, 0.99),
        "texts": texts,
    }


# --- pipeline -------------------------------------------------------------------------------


class Pipeline:
    """A web server and one worker, as `make run` starts them, on a bench database and Redis prefix."""

    def __init__(self, port: int):
        self.port = port
        self.processes: list[subprocess.Popen] = []
        self.token = ""

    def __enter__(self) -> Pipeline:
        import django

        BENCH_DB.unlink(missing_ok=True)
        django.setup()
        from django.core.management import call_command

        from edgeportal.sources.services import source_create

        call_command("migrate", verbosity=0)
        _, self.token = source_create(name="bench", kind="mes")
        env = {**os.environ, "EDGE_WINDOW_MS": str(WINDOW_MS), "ALLOWED_HOSTS": "127.0.0.1"}
        logs = (ROOT / ".cache" / "bench-worker.log").open("w")
        self.processes.append(
            subprocess.Popen(
                [sys.executable, "-m", "celery", "-A", "edgeportal", "worker", "-P", "solo", "-n", "bench@%h",
                 "--without-mingle", "--without-gossip", "--without-heartbeat", "-Q", f"{PREFIX}:celery"],
                cwd=ROOT, env=env, stdout=logs, stderr=subprocess.STDOUT,
            )
        )  # fmt: skip
        self.processes.append(
            subprocess.Popen(
                [sys.executable, "manage.py", "runserver", f"127.0.0.1:{self.port}", "--noreload"],
                cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )
        )  # fmt: skip
        self._wait_ready()
        return self

    def __exit__(self, *exc) -> None:
        for process in self.processes:
            process.terminate()
        for process in self.processes:
            process.wait(60)
        import redis
        from django.conf import settings

        client = redis.Redis.from_url(settings.REDIS_URL)
        keys = list(client.scan_iter(f"{PREFIX}:*"))
        if keys:
            client.delete(*keys)

    def _wait_ready(self) -> None:
        from edgeportal.jobs.queueing import get_queue

        redis_client = get_queue().redis
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            if any(p.poll() is not None for p in self.processes):
                raise RuntimeError("a bench process exited; see .cache/bench-worker.log")
            if redis_client.keys(f"{PREFIX}:workers:*"):
                try:
                    urllib.request.urlopen(f"http://127.0.0.1:{self.port}/login/", timeout=2)
                    return
                except OSError:
                    pass
            time.sleep(0.2)
        raise TimeoutError("pipeline did not start")

    def set_max_batch_size(self, size: int) -> None:
        from edgeportal.jobs.queueing import get_queue
        from inference.scheduler import SchedulerSettings, SettingsStore

        SettingsStore(get_queue(), SchedulerSettings()).update(max_batch_size=size)

    def submit(self, prompt: str) -> int:
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}/api/jobs",
            data=json.dumps({"prompt": prompt}).encode(),
            headers={"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read())["id"]

    def wait(self, job_ids: list[int], timeout: float = 900) -> list:
        from edgeportal.jobs.models import Job

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            jobs = list(Job.objects.filter(pk__in=job_ids).select_related("latency"))
            if all(job.is_finished for job in jobs):
                failed = [job for job in jobs if job.status != Job.Status.DONE]
                if failed:
                    raise RuntimeError(f"{len(failed)} job(s) failed: {failed[0].error}")
                return jobs
            time.sleep(0.25)
        raise TimeoutError("jobs did not finish")

    def saturation(self, prompts: list[str]) -> dict:
        with ThreadPoolExecutor(max_workers=4) as pool:
            ids = list(pool.map(self.submit, prompts))
        jobs = self.wait(ids)
        first = min(job.created_at for job in jobs)
        last = max(job.finished_at for job in jobs)
        totals = [job.latency.total_ms for job in jobs]
        return {
            "throughput": len(jobs) / (last - first).total_seconds(),
            "p50": percentile(totals, 0.5) / 1000,
            "p95": percentile(totals, 0.95) / 1000,
            "p99": percentile(totals, 0.99) / 1000,
            "mean_batch": statistics.mean(job.latency.batch_size for job in jobs),
        }

    def low_load(self, prompts: list[str]) -> dict:
        """One job at a time: what the pipeline adds beyond the window and the inference itself."""
        overheads, client_overheads, totals = [], [], []
        for prompt in prompts:
            sent = time.time()
            [job] = self.wait([self.submit(prompt)])
            latency = job.latency
            totals.append(latency.total_ms)
            overheads.append(latency.total_ms - latency.inference_ms - WINDOW_MS)
            # From the client's send to the stored result: adds HTTP, authentication and request parsing.
            client_total = (job.finished_at.timestamp() - sent) * 1000
            client_overheads.append(client_total - latency.inference_ms - WINDOW_MS)
            time.sleep(0.2)
        return {
            "overhead_p50": percentile(overheads, 0.5),
            "overhead_p95": percentile(overheads, 0.95),
            "client_overhead_p50": percentile(client_overheads, 0.5),
            "client_overhead_p95": percentile(client_overheads, 0.95),
            "p50": percentile(totals, 0.5) / 1000,
            "p95": percentile(totals, 0.95) / 1000,
            "p99": percentile(totals, 0.99) / 1000,
        }


# --- report ---------------------------------------------------------------------------------


def agreement(a: list[str], b: list[str]) -> float:
    return sum(x == y for x, y in zip(a, b, strict=True)) / len(a)


def report(args, raw: dict, low: dict, sat8: dict, sat1: dict, command: str) -> str:
    raw8 = raw["float32"][8]
    lines = [
        "# Benchmarks",
        "",
        "Numbers from one run of the command below, all measured side by side on the same machine.",
        "",
        "## Batching: raw model vs the full pipeline",
        "",
        f"Command: `{command}`  ",
        f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}, torch {__import__('torch').__version__}, CPU only.  ",
        f"Model: SmolLM2-135M-Instruct (default GGUF, converted), greedy, {MAX_NEW_TOKENS} new tokens, "
        f"{args.jobs} prompts from `factory_prompts.jsonl`. Pipeline: `window_ms={WINDOW_MS}`, one worker, "
        "Django runserver, SQLite, local Redis.",
        "",
        "### Raw `generate_batch` (float32)",
        "",
        "| batch size | throughput (req/s) | batch time p50 (s) | p95 (s) | p99 (s) |",
        "|---:|---:|---:|---:|---:|",
    ]
    for size, r in raw["float32"].items():
        lines.append(f"| {size} | {r['throughput']:.2f} | {r['p50']:.2f} | {r['p95']:.2f} | {r['p99']:.2f} |")
    lines += [
        "",
        "### float32 vs bfloat16 vs float16 (`EDGE_DTYPE`)",
        "",
        "| dtype | batch size | req/s | speed-up over float32 | outputs identical to float32 |",
        "|---|---:|---:|---:|---:|",
    ]
    for dtype, runs in raw.items():
        if dtype == "float32":
            continue
        for size, r in runs.items():
            f32 = raw["float32"][size]
            lines.append(
                f"| {dtype} | {size} | {r['throughput']:.2f} | {r['throughput'] / f32['throughput']:.2f}x "
                f"| {agreement(f32['texts'], r['texts']):.0%} |"
            )
    lines += [
        "",
        "### Pipeline (HTTP API -> Redis -> worker -> database)",
        "",
        "| run | throughput (req/s) | mean batch | latency p50 (s) | p95 (s) | p99 (s) |",
        "|---|---:|---:|---:|---:|---:|",
        f"| saturation, max_batch_size=8 | {sat8['throughput']:.2f} | {sat8['mean_batch']:.1f} | {sat8['p50']:.2f} "
        f"| {sat8['p95']:.2f} | {sat8['p99']:.2f} |",
        f"| saturation, max_batch_size=1 | {sat1['throughput']:.2f} | {sat1['mean_batch']:.1f} | {sat1['p50']:.2f} "
        f"| {sat1['p95']:.2f} | {sat1['p99']:.2f} |",
        f"| low load, one job at a time | — | 1.0 | {low['p50']:.2f} | {low['p95']:.2f} | {low['p99']:.2f} |",
        "",
        "### Ratios and goals",
        "",
        "| measure | value | goal |",
        "|---|---:|---|",
        f"| pipeline (batch 8) / raw batch-8 throughput | {sat8['throughput'] / raw8['throughput']:.0%} | ≥ 90 % |",
        f"| pipeline batch 8 / pipeline batch 1 throughput | {sat8['throughput'] / sat1['throughput']:.2f}x | ≥ 4x |",
        f"| low-load overhead beyond window + inference, p50, from the client's send | "
        f"{low['client_overhead_p50']:.1f} ms | ≤ 15 ms |",
        f"| same, p95 | {low['client_overhead_p95']:.1f} ms | — |",
        f"| same, from the job's creation in the database, p50 / p95 | {low['overhead_p50']:.1f} / "
        f"{low['overhead_p95']:.1f} ms | — |",
        "",
        "Reading the numbers: a saturation run submits all prompts at once, so its latencies include the",
        "wait behind earlier batches. Low-load overhead is each job's total (created to finished, from the",
        "database) minus its inference time minus `window_ms`: the cost of HTTP, Redis, the worker loop and",
        'the database writes. "Outputs identical" is an exact text match with float32 for the same prompts:',
        "bfloat16 is faster but changes many greedy outputs, and float16 is slower on this CPU, so float32",
        "stays the default.",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=32, help="prompts per run (default 32)")
    parser.add_argument("--low-load-jobs", type=int, default=10)
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--output", type=Path, default=ROOT / "BENCHMARKS.md")
    args = parser.parse_args()
    command = "make bench" if args.jobs == 32 else f"python bench/batching.py --jobs {args.jobs}"
    prompts = load_prompts(args.jobs)

    from inference.runtime import load_model

    print("raw generate_batch ...", flush=True)
    raw: dict = {"float32": {}}
    model = load_model(None, "float32")
    for size in (1, 2, 4, 8):
        raw["float32"][size] = raw_run(model, prompts, size)
        print(f"  float32 batch {size}: {raw['float32'][size]['throughput']:.2f} req/s", flush=True)
    del model
    for dtype in ("bfloat16", "float16"):
        model = load_model(None, dtype)
        raw[dtype] = {}
        for size in (1, 8):
            raw[dtype][size] = raw_run(model, prompts, size)
            print(f"  {dtype} batch {size}: {raw[dtype][size]['throughput']:.2f} req/s", flush=True)
        del model

    print("pipeline ...", flush=True)
    with Pipeline(args.port) as pipeline:
        pipeline.low_load(prompts[:2])  # warm the web server and database
        low = pipeline.low_load(load_prompts(args.jobs + args.low_load_jobs)[args.jobs :])
        print(f"  low load overhead p50 {low['client_overhead_p50']:.1f} ms", flush=True)
        pipeline.set_max_batch_size(8)
        sat8 = pipeline.saturation(prompts)
        print(f"  saturation batch 8: {sat8['throughput']:.2f} req/s", flush=True)
        pipeline.set_max_batch_size(1)
        sat1 = pipeline.saturation(prompts)
        print(f"  saturation batch 1: {sat1['throughput']:.2f} req/s", flush=True)

    text = report(args, raw, low, sat8, sat1, command)
    args.output.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
