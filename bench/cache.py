"""Prompt-cache benchmark: the factory workload replayed with 30 % repeats through the full pipeline.

Run with `make bench-cache` (or `.venv/bin/python bench/cache.py`). It writes its section of BENCHMARKS.md.
Repeats are written differently (extra spaces, full-width digits) so they only hit after normalisation.
"""

from __future__ import annotations

import argparse
import random
import time

import harness
from harness import Pipeline, percentile

WINDOW_MS = 60
harness.configure(EDGE_CACHE_ENABLED="true", EDGE_DEFAULT_MAX_NEW_TOKENS="32")

FULL_WIDTH = str.maketrans("0123456789", "".join(chr(0xFF10 + digit) for digit in range(10)))


def respell(prompt: str, rng: random.Random) -> str:
    """The same request as a different device would send it."""
    words = prompt.split(" ")
    return "  ".join(words).translate(FULL_WIDTH) if rng.random() < 0.5 else f"  {prompt}\n"


def build_requests(count: int, repeat_share: float, seed: int) -> list[tuple[str, bool]]:
    """(prompt, is_repeat) pairs: originals from the workload, repeats of prompts sent earlier."""
    rng = random.Random(seed)
    originals = iter(harness.workload())
    sent: list[str] = []
    requests = []
    for _ in range(count):
        if sent and rng.random() < repeat_share:
            requests.append((respell(rng.choice(sent), rng), True))
        else:
            prompt = next(originals)
            sent.append(prompt)
            requests.append((prompt, False))
    return requests


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=80)
    parser.add_argument("--rate", type=float, default=2.0, help="mean requests per second (Poisson arrivals)")
    parser.add_argument("--port", type=int, default=8766)
    args = parser.parse_args()
    requests = build_requests(args.requests, 0.30, seed=7)
    rng = random.Random(11)

    with Pipeline(args.port, window_ms=WINDOW_MS) as pipeline:
        answers = []
        for prompt, is_repeat in requests:
            answers.append((pipeline.submit(prompt), is_repeat))
            time.sleep(rng.expovariate(args.rate))
        jobs = {job.pk: job for job in pipeline.wait([answer["id"] for answer, _ in answers])}

    hits = [a for a, _ in answers if jobs[a["id"]].cache_hit and jobs[a["id"]].follows_id is None]
    shared = [a for a, _ in answers if jobs[a["id"]].follows_id is not None]
    misses = [a for a, _ in answers if not jobs[a["id"]].cache_hit]
    repeats = sum(is_repeat for _, is_repeat in answers)
    hit_client = [a["round_trip_ms"] for a in hits]
    hit_server = [jobs[a["id"]].latency.total_ms for a in hits]
    miss_total = [jobs[a["id"]].latency.total_ms for a in misses]

    def row(name, values):
        return (
            f"| {name} | {len(values)} | {percentile(values, 0.5):.1f} | {percentile(values, 0.95):.1f} "
            f"| {percentile(values, 0.99):.1f} |"
        )

    text = "\n".join(
        [
            "## Prompt cache: repeats answered without the model",
            "",
            "Command: `make bench-cache`  ",
            f"Machine: {harness.machine()}.  ",
            f"Workload: {args.requests} requests from `factory_prompts.jsonl`, {repeats} of them repeats "
            f"({repeats / len(answers):.0%}) respelled with extra spaces or full-width digits, Poisson arrivals at "
            f"{args.rate:g} req/s; default model, `window_ms={WINDOW_MS}`, one worker, SQLite, local Redis.",
            "",
            "| answered | requests | latency p50 (ms) | p95 (ms) | p99 (ms) |",
            "|---|---:|---:|---:|---:|",
            row("cache hit, as the client saw it (HTTP round trip)", hit_client),
            row("cache hit, in the entry (server side)", hit_server),
            row("miss: ran on the model (created to finished)", miss_total),
            "",
            f"Hit rate: {len(hits) / len(answers):.0%} of all requests answered from the cache, plus "
            f"{len(shared)} repeat(s) that arrived while the identical job was still running and shared its run "
            f"(single flight). Goal: hits answer in under 20 ms at p99 — measured "
            f"{percentile(hit_client, 0.99):.1f} ms at the client.",
        ]
    )
    harness.write_section("cache", text)
    print(text)


if __name__ == "__main__":
    main()
