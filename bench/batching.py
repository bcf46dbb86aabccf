"""Batching benchmark: raw generate_batch vs the full pipeline (HTTP API -> Redis -> worker -> database).

Run with `make bench` (or `.venv/bin/python bench/batching.py --jobs 32`). It writes its section of
BENCHMARKS.md.
Everything is measured in this one run on this machine, side by side, with the default model.
"""

from __future__ import annotations

import argparse
import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import harness
from harness import Pipeline, load_prompts, percentile

MAX_NEW_TOKENS = 32
WINDOW_MS = 60

harness.configure(
    EDGE_DEFAULT_MAX_NEW_TOKENS=str(MAX_NEW_TOKENS),
    EDGE_CACHE_ENABLED="false",  # this benchmark measures batching: every request must reach the model
)


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


def saturation(pipeline: Pipeline, prompts: list[str]) -> dict:
    """All prompts at once, each with the longest deadline a request may ask for: this run measures
    throughput, and admission would rightly refuse what a 10 s deadline cannot hold behind the others."""
    with ThreadPoolExecutor(max_workers=4) as pool:
        ids = [answer["id"] for answer in pool.map(lambda p: pipeline.submit(p, deadline_ms=300_000), prompts)]
    jobs = pipeline.wait(ids)
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


def low_load(pipeline: Pipeline, prompts: list[str]) -> dict:
    """One job at a time: what the pipeline adds beyond the window and the inference itself."""
    overheads, client_overheads, totals = [], [], []
    for prompt in prompts:
        sent = time.time()
        [job] = pipeline.wait([pipeline.submit(prompt)["id"]])
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
    raw8 = raw["side_by_side"]
    lines = [
        "## Batching: raw model vs the full pipeline",
        "",
        f"Command: `{command}`  ",
        f"Machine: {harness.machine()}.  ",
        f"Model: SmolLM2-135M-Instruct (default GGUF, converted), greedy, {MAX_NEW_TOKENS} new tokens, "
        f"{args.jobs} prompts from `factory_prompts.jsonl`. Pipeline: `window_ms={WINDOW_MS}`, one worker, "
        f"{harness.WEB_SERVER}, SQLite, local Redis.",
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
        if dtype in ("float32", "side_by_side"):
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
        f"| pipeline (batch 8) / raw batch-8 throughput measured just before it ({raw8['throughput']:.2f} req/s) "
        f"| {sat8['throughput'] / raw8['throughput']:.0%} | ≥ 90 % |",
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
    parser.add_argument("--output", type=Path, default=harness.BENCHMARKS)
    args = parser.parse_args()
    command = "make bench" if args.jobs == 32 else f"python bench/batching.py --jobs {args.jobs}"
    prompts = load_prompts(args.jobs)

    from inference.runtime import load_engine

    print("raw generate_batch ...", flush=True)
    raw: dict = {"float32": {}}
    float32 = load_engine(None, dtype="float32", device="cpu")
    for size in (1, 2, 4, 8):
        raw["float32"][size] = raw_run(float32, prompts, size)
        print(f"  float32 batch {size}: {raw['float32'][size]['throughput']:.2f} req/s", flush=True)
    for dtype in ("bfloat16", "float16"):
        model = load_engine(None, dtype=dtype, device="cpu")
        raw[dtype] = {}
        for size in (1, 8):
            raw[dtype][size] = raw_run(model, prompts, size)
            print(f"  {dtype} batch {size}: {raw[dtype][size]['throughput']:.2f} req/s", flush=True)
        del model

    print("pipeline ...", flush=True)
    with Pipeline(args.port, window_ms=WINDOW_MS) as pipeline:
        low_load(pipeline, prompts[:2])  # warm the web server and database
        low = low_load(pipeline, load_prompts(args.jobs + args.low_load_jobs)[args.jobs :])
        print(f"  low load overhead p50 {low['client_overhead_p50']:.1f} ms", flush=True)
        # Raw batch 8 again right before the pipeline run, in the same conditions: this pair gives the ratio.
        raw["side_by_side"] = raw_run(float32, prompts, 8)
        print(f"  raw batch 8 side by side: {raw['side_by_side']['throughput']:.2f} req/s", flush=True)
        pipeline.set_max_batch_size(8)
        sat8 = saturation(pipeline, prompts)
        print(f"  saturation batch 8: {sat8['throughput']:.2f} req/s", flush=True)
        pipeline.set_max_batch_size(1)
        sat1 = saturation(pipeline, prompts)
        print(f"  saturation batch 1: {sat1['throughput']:.2f} req/s", flush=True)

    text = report(args, raw, low, sat8, sat1, command)
    harness.write_section("batching", text, args.output)
    print(text)


if __name__ == "__main__":
    main()
