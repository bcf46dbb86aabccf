"""Overload benchmark: Poisson arrivals at 0.5x, 1x and 2x measured capacity, 5 % long prompts, through the
full pipeline with the default model; EdgePortal's scheduler side by side with a plain single FIFO window.

Run with `make bench-overload` (or `.venv/bin/python bench/overload.py --duration 60`). It writes its
section of BENCHMARKS.md. Every run of the table happens in this one invocation. The first two designs
share one pipeline (web server + one worker) and differ only in scheduler settings, applied live
between runs:

- scheduler: deadlines (10 s; 30 s for long prompts, the long lane's default), admission control,
  queue limit, a long lane above 256 prompt tokens;
- scheduler (long 10 s): the same, but long prompts get 10 s too, so their batches have little time
  to share with short ones (mixed workload only: its short-only baseline is the scheduler's);
- fifo: the seed's design, one window over one queue in arrival order, no deadlines, no admission,
  no lanes. Its deadline hit rate is measured against the same 10 s;
- scheduler (lane workers): the scheduler with two workers, one per lane, one torch thread (core) each,
  started as a second pipeline; it gets the same arrival rates.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import re
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import harness
from harness import Pipeline, percentile

WINDOW_MS = 60
DEADLINE_MS = 10_000
LONG_DEADLINE_MS = 30_000
LONG_SHARE = 0.05
# The workload's shift logs run to 1 500 tokens: above the default prompt limit of 1 024, which would refuse them.
harness.configure(EDGE_CACHE_ENABLED="false", EDGE_DEFAULT_MAX_NEW_TOKENS="32", EDGE_MAX_PROMPT_TOKENS="2048")

DESIGNS = {
    "scheduler": {
        "window_ms": WINDOW_MS,
        "max_batch_size": 8,
        "default_deadline_ms": DEADLINE_MS,
        "long_deadline_ms": LONG_DEADLINE_MS,
        "max_deadline_ms": 600_000,
        "long_prompt_tokens": 256,
        "queue_limit": 64,
        "source_share_pct": 100,  # one source stands for the whole plant here: no per-source share
    },
    "fifo": {
        "window_ms": WINDOW_MS,
        "max_batch_size": 8,
        "default_deadline_ms": 3_600_000,  # never expires, never refused: it queues
        "long_deadline_ms": 3_600_000,
        "max_deadline_ms": 3_600_000,
        "long_prompt_tokens": 100_000,  # one lane
        "long_output_tokens": 100_000,
        "max_batch_tokens": 1_000_000,
        "queue_limit": 100_000,
        "source_share_pct": 100,
    },
}
DESIGNS["scheduler (long 10 s)"] = {**DESIGNS["scheduler"], "long_deadline_ms": DEADLINE_MS}


ONE_WORKER = {"bench": {}}
# The long lane on a worker of its own: each gets one of the two cores (one torch thread each).
LANE_WORKERS = {
    "short": {"EDGE_WORKER_LANES": "short", "OMP_NUM_THREADS": "1"},
    "long": {"EDGE_WORKER_LANES": "long", "OMP_NUM_THREADS": "1"},
}
# What each row of the table runs: scheduler settings, the workers, the design whose short-only run is
# its baseline (None: no baseline, FIFO has no goal of its own).
SETUPS = {
    "scheduler": ("scheduler", ONE_WORKER, "scheduler"),
    "scheduler (long 10 s)": ("scheduler (long 10 s)", ONE_WORKER, "scheduler"),
    "fifo": ("fifo", ONE_WORKER, None),
    "scheduler (lane workers)": ("scheduler", LANE_WORKERS, "scheduler (lane workers)"),
}


def deadline_of(prompt: str) -> int:
    """The deadline a job of this prompt has under the scheduler design: the FIFO rows are measured against it."""
    return LONG_DEADLINE_MS if is_long(prompt) else DEADLINE_MS


def is_long(prompt: str) -> bool:
    return len(prompt) > 1000


def prompts_by_kind() -> tuple[list[str], list[str]]:
    rows = [json.loads(line) for line in harness.WORKLOAD.read_text().splitlines() if line.strip()]
    long = [row["prompt"] for row in rows if is_long(row["prompt"])]
    short = [row["prompt"] for row in rows if not is_long(row["prompt"])]
    return short, long


def post(pipeline: Pipeline, prompt: str) -> dict:
    return pipeline.post({"prompt": prompt})


def capacity(pipeline: Pipeline, short: list[str], count: int) -> float:
    """Jobs per second the pipeline finishes when saturated with short prompts."""
    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(lambda p: post(pipeline, p), [short[i % len(short)] for i in range(count)]))
    ids = [a["body"]["id"] for a in answers if a["status"] == 202]
    jobs = pipeline.wait(ids)
    first = min(job.created_at for job in jobs)
    last = max(job.finished_at for job in jobs)
    return len(jobs) / (last - first).total_seconds()


def warm_long_lane(pipeline: Pipeline, long: list[str], count: int) -> None:
    """Run long prompts one at a time, so the long lane's batch time is measured as on a node that has
    run for a while: its first samples are planned with a wide margin (see record_batch_time)."""
    for prompt in long[:count]:
        answer = post(pipeline, prompt)
        if answer["status"] != 202:
            raise RuntimeError(f"warm-up refused: {answer['status']} {answer['body']}")
        wait_finished([answer["body"]["id"]])


def wait_finished(job_ids: list[int], timeout: float = 900) -> list:
    from edgeportal.jobs.models import Job

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        jobs = list(Job.objects.filter(pk__in=job_ids).select_related("latency"))
        if all(job.is_finished for job in jobs):
            return jobs
        time.sleep(0.5)
    raise TimeoutError("jobs did not finish")


def run(pipeline: Pipeline, *, rate: float, duration: float, long_share: float, seed: int) -> dict:
    from edgeportal.core.queueing import get_queue
    from edgeportal.jobs.models import Job

    short, long = prompts_by_kind()
    rng = random.Random(seed)
    arrivals, t = [], 0.0
    while True:
        t += rng.expovariate(rate)
        if t >= duration:
            break
        arrivals.append((t, rng.choice(long) if rng.random() < long_share else rng.choice(short)))

    depths: list[int] = []
    stop = threading.Event()

    def sample_depth():
        queue = get_queue()
        while not stop.is_set():
            depths.append(queue.depth())
            stop.wait(0.1)

    sampler = threading.Thread(target=sample_depth, daemon=True)
    sampler.start()
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=64) as pool:
        futures = []
        for at, prompt in arrivals:
            delay = started + at - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            futures.append(pool.submit(post, pipeline, prompt))
        answers = [future.result() for future in futures]
    accepted = [a["body"]["id"] for a in answers if a["status"] == 202]
    rejected = [a for a in answers if a["status"] == 429]
    refused = [a for a in answers if a["status"] not in (202, 429)]
    if refused:  # any other answer would silently change the workload
        raise RuntimeError(f"{len(refused)} request(s) refused: {refused[0]['status']} {refused[0]['body']}")
    jobs = wait_finished(accepted)
    stop.set()
    sampler.join()

    def stats(selection):
        done = [j for j in selection if j.status == Job.Status.DONE]
        totals = [j.latency.total_ms for j in done]
        on_time = [j for j in done if j.latency.total_ms <= deadline_of(j.prompt)]
        return {
            "accepted": len(selection),
            "done": len(done),
            "expired": sum(j.status == Job.Status.EXPIRED for j in selection),
            "p50": percentile(totals, 0.5),
            "p95": percentile(totals, 0.95),
            "p99": percentile(totals, 0.99),
            "max": max(totals, default=float("nan")),
            "p95_missed": percentile_with_missed(totals, len(selection) - len(done), 0.95),
            "hit_rate": len(on_time) / len(selection) if selection else float("nan"),
        }

    reject_ms = [a["round_trip_ms"] for a in rejected]
    reject_server_ms = [a["server_ms"] for a in rejected]
    return {
        "offered": len(arrivals),
        "offered_long": sum(is_long(prompt) for _, prompt in arrivals),
        "all": stats(jobs),
        "short": stats([j for j in jobs if j.lane == "short" and not is_long(j.prompt)]),
        "long": stats([j for j in jobs if is_long(j.prompt)]),
        "rejected": len(rejected),
        "reject_p50": percentile(reject_ms, 0.5),
        "reject_p99": percentile(reject_ms, 0.99),
        "reject_server_p50": percentile(reject_server_ms, 0.5),
        "reject_server_p99": percentile(reject_server_ms, 0.99),
        "max_depth": max(depths, default=0),
        "failed": sum(j.status == Job.Status.FAILED for j in jobs),
        "expired_why": expiry_summary([j.error for j in jobs if j.status == Job.Status.EXPIRED]),
    }


# planning.expiry_reason's text for a job whose batch would finish after its deadline.
SHORT_BY = re.compile(r"\((\d+) ms left, its (\w+) batch would take about (\d+) ms\)")


def expiry_summary(reasons: list[str]) -> str:
    """Why the expired jobs expired, in a line: per lane, how many had too little time left for their batch
    (and by how much), and how many waited past their deadline."""
    short_by: dict[str, list[int]] = {}
    passed = 0
    for reason in reasons:
        if found := SHORT_BY.search(reason):
            left, lane, batch = found.groups()
            short_by.setdefault(lane, []).append(int(batch) - int(left))
        else:
            passed += 1
    parts = [
        f"{len(gaps)} {lane} with too little time left for their batch ({min(gaps)} to {max(gaps)} ms too little)"
        for lane, gaps in sorted(short_by.items())
    ]
    return "; ".join(parts + ([f"{passed} whose deadline passed while they waited"] if passed else []))


# --- the edges of the operating range: a cold start, and the recovery after an overload -------------

COLD_SCENARIOS = {
    # name: (jobs sent at once, their deadline (None: the default), concurrent senders)
    "burst of 120, 6 s deadlines": (120, 6_000, 16),
    "24 default-deadline jobs at once": (24, None, 24),
}


def burst(pipeline: Pipeline, short: list[str], count: int, deadline_ms: int | None, senders: int) -> dict:
    """Send count short prompts from `senders` threads at once; wait for the accepted ones to end."""
    from edgeportal.jobs.models import Job
    from edgeportal.latency.models import BatchRecord

    def send(i: int) -> dict:
        body = {"prompt": f"{short[i % len(short)]} (request {i})"}  # distinct: no single flight, no cache
        return pipeline.post(body if deadline_ms is None else {**body, "deadline_ms": deadline_ms})

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=senders) as pool:
        answers = list(pool.map(send, range(count)))
    answered_ms = (time.perf_counter() - started) * 1000  # how long the web was busy answering the burst
    unexpected = [a for a in answers if a["status"] not in (202, 429)]
    if unexpected:
        raise RuntimeError(f"unexpected answer: {unexpected[0]['status']} {unexpected[0]['body']}")
    accepted = [a["body"]["id"] for a in answers if a["status"] == 202]
    jobs = wait_finished(accepted)
    done = [j for j in jobs if j.status == Job.Status.DONE]
    late = [j for j in done if j.latency.total_ms > (j.deadline_at - j.created_at).total_seconds() * 1000]
    return {
        "sent": count,
        "answered_ms": round(answered_ms),
        "accepted": len(accepted),
        "refused": sum(a["status"] == 429 for a in answers),
        "expired": sum(j.status == Job.Status.EXPIRED for j in jobs),
        "late": len(late),
        "p95": percentile([j.latency.total_ms for j in done], 0.95),
        # What ran together, and why the expired ones ended: a second batch, or a slower batch than planned.
        "batch_sizes": sorted(Counter(j.batch_id for j in done).values(), reverse=True),
        # Each batch's model time, in the order they ran: the first ones run while the web answers the burst.
        "batch_ms": [
            round(b.inference_ms)
            for b in BatchRecord.objects.filter(pk__in={j.batch_id for j in done}).order_by("inference_started_at")
        ],
        "expired_why": sorted(Counter(j.error for j in jobs if j.status == Job.Status.EXPIRED).items()),
    }


def recovery_ms(pipeline: Pipeline, short: list[str], limit_s: float = 120) -> tuple[float, int]:
    """From an idle node, how long until a default-deadline job is accepted (trying every 100 ms), and
    how many tries were refused first."""
    started, refused = time.perf_counter(), 0
    while time.perf_counter() - started < limit_s:
        answer = post(pipeline, f"{short[0]} (recovery probe {refused})")
        if answer["status"] == 202:
            wait_finished([answer["body"]["id"]])
            return (time.perf_counter() - started) * 1000 - answer["round_trip_ms"], refused
        refused += 1
        time.sleep(0.1)
    return float("inf"), refused


def estimate_now() -> dict[str, float]:
    """The short lane's batch estimate as admission sees it now: central, and with its margin."""
    from edgeportal.core.queueing import get_queue, scheduler_settings
    from inference.batch_time import batch_estimate_ms, central_estimate_ms
    from inference.planning import full_batch_tokens

    measurements = get_queue().measurements()
    tokens = full_batch_tokens(scheduler_settings(), measurements, "short")
    return {
        "central": central_estimate_ms(measurements, "short", tokens),
        "planned": batch_estimate_ms(measurements, "short", tokens),
    }


def edge_phases(port: int, runs: int) -> dict[str, list[dict]]:
    """Each cold scenario `runs` times, each on a freshly started pipeline (new database, empty Redis
    prefix, a worker that has only warmed up), with the node's default settings; after each, the recovery
    on the idle node. A cold start happens once per start: one run is one sample, hence several."""
    short, _ = prompts_by_kind()
    results: dict[str, list[dict]] = {name: [] for name in COLD_SCENARIOS}
    for run in range(1, runs + 1):
        for name, (count, deadline_ms, senders) in COLD_SCENARIOS.items():
            with Pipeline(port, window_ms=WINDOW_MS) as pipeline:
                print(f"cold start {run}/{runs}: {name} ...", flush=True)
                before = estimate_now()  # the warm-up's baseline, what admission plans the burst with
                result = burst(pipeline, short, count, deadline_ms, senders)
                result["before"], result["after"] = before, estimate_now()
                result["recovery_ms"], result["recovery_refused"] = recovery_ms(pipeline, short)
                result["one_batch_ms"] = WINDOW_MS + estimate_now()["central"]
                results[name].append(result)
                print(f"  {result}", flush=True)
    return results


def phases_report(command: str, results: dict[str, list[dict]]) -> str:
    runs = max(len(r) for r in results.values())
    lines = [
        "## Overload at the edges: a cold start, and the recovery after it",
        "",
        f"Command: `{command}`  ",
        f"Machine: {harness.machine()}.  ",
        "Model: SmolLM2-135M-Instruct (default), 32 new tokens; one worker; the node's default settings "
        f"(`window_ms={WINDOW_MS}`, `max_batch_size=8`, default deadline 10 s, queue limit 256). Each scenario "
        f"ran {runs} times, each time on a new pipeline: a new database, an empty Redis prefix, and a worker "
        "that has only loaded and warmed up the model (its warm-up measures a batch of one, a full batch and "
        "a prefill chunk). The jobs are the workload's short prompts, each made distinct, sent at once by "
        "concurrent senders. Then, as soon as every accepted job ended, a default-deadline job is sent every "
        "100 ms until one is accepted.",
        "",
        "| scenario | run | sent | accepted | refused (429) | accepted that expired | done after their deadline "
        "| batches (jobs each) | their model time | p95 of done | estimate before it: central; planned "
        "| estimate after it: central; planned "
        "| recovery: first default job accepted after | goal: one window + one batch |",
        "|---|---:|---:|---:|---:|---:|---:|---|---|---:|---:|---:|---:|---:|",
    ]
    for name, rows in results.items():
        for run, r in enumerate(rows, start=1):
            share = r["expired"] / r["accepted"] if r["accepted"] else float("nan")
            lines.append(
                f"| {name} | {run} | {r['sent']} | {r['accepted']} | {r['refused']} | {r['expired']} ({share:.0%}) "
                f"| {r['late']} | {', '.join(map(str, r['batch_sizes']))} "
                f"| {', '.join(fmt_ms(ms) for ms in r['batch_ms'])} | {fmt_ms(r['p95'])} "
                f"| {fmt_ms(r['before']['central'])}; {fmt_ms(r['before']['planned'])} "
                f"| {fmt_ms(r['after']['central'])}; {fmt_ms(r['after']['planned'])} "
                f"| {fmt_ms(r['recovery_ms'])} ({r['recovery_refused']} refused first) | {fmt_ms(r['one_batch_ms'])} |"
            )
    lines += ["", f"| goal (over the {runs} runs) | measured | met |", "|---|---|---|"]
    for name, rows in results.items():
        expired, accepted = sum(r["expired"] for r in rows), sum(r["accepted"] for r in rows)
        share = expired / accepted if accepted else 0.0
        lines.append(
            f"| {name}: accepted jobs that expire ≤ 2 % | {expired} of {accepted} ({share:.1%}) "
            f"| {'yes' if share <= 0.02 else 'no'} |"
        )
        slowest = max(rows, key=lambda r: r["recovery_ms"] - r["one_batch_ms"])
        lines.append(
            f"| {name}, then idle: a default job accepted within one window + one batch (the closest run) "
            f"| {fmt_ms(slowest['recovery_ms'])} against {fmt_ms(slowest['one_batch_ms'])} "
            f"| {'yes' if all(r['recovery_ms'] <= r['one_batch_ms'] for r in rows) else 'no'} |"
        )
    reasons = Counter(why for rows in results.values() for r in rows for why, n in r["expired_why"] for _ in range(n))
    lines += [
        "",
        "The recovery time runs from the moment every accepted job had ended to the answer `202` to a",
        "default-deadline job (less that request's own round trip). The estimate columns are admission's",
        "view of a full short batch before the burst (the worker's warm-up) and right after it: its central",
        "value, and the value it plans with (central plus twice the deviation, the deviation at most half the",
        "central value). The batches' model time is each batch's, in the order they ran.",
        *(["", "Why the expired ones expired:", ""] if reasons else []),
        *(f"- {n}: {why}" for why, n in sorted(reasons.items())),
        "",
    ]
    return "\n".join(lines)


def percentile_with_missed(totals: list[float], missed: int, q: float) -> float:
    """The percentile of accepted jobs, those that never finished (expired) counted as infinitely late:
    infinite once the percentile reaches them."""
    n = len(totals) + missed
    if not n:
        return float("nan")
    if math.ceil((n - 1) * q) >= len(totals):
        return float("inf")
    return percentile(totals + [max(totals)] * missed, q)  # the ranks it reads are all done jobs


def apply(design: str) -> None:
    from edgeportal.core.queueing import get_settings_store

    store = get_settings_store()
    store.redis.delete(store.key)
    store.update(**DESIGNS[design])


def fmt_ms(value: float) -> str:
    if value == float("inf"):
        return "missed"
    return "—" if value != value else f"{value / 1000:.2f} s"


def fmt_ratio(value: float) -> str:
    return "—" if value != value else ("missed" if value == float("inf") else f"{value:.2f}x")


def long_cell(result: dict) -> str:
    long, offered = result["long"], result["offered_long"]
    if not offered:
        return "—"
    return f"{long['done']} / {long['accepted']} / {offered}" + (f", {fmt_ms(long['max'])}" if long["done"] else "")


def report(command: str, cap: float, results: dict, duration: float) -> str:
    lines = [
        "## Overload: deadlines, admission and lanes vs a plain FIFO window",
        "",
        f"Command: `{command}`  ",
        f"Machine: {harness.machine()}.  ",
        f"Model: SmolLM2-135M-Instruct (default), greedy, 32 new tokens; one worker (two for lane workers), "
        f"{harness.WEB_SERVER}, SQLite, "
        f"local Redis; `window_ms={WINDOW_MS}`, `max_batch_size=8`. Measured capacity (saturated, short prompts): "
        f"**{cap:.2f} jobs/s**. Each run: Poisson arrivals for {duration:.0f} s; 'mixed' has {LONG_SHARE:.0%} long "
        "prompts (the workload's shift logs, 990 to 1 540 tokens, each a long-lane batch of its own), "
        "'short only' none. Deadline 10 s for short prompts and 30 s for long ones, the long lane's default "
        "(10 s for both in 'scheduler (long 10 s)'; the FIFO design has none, and its hit rate counts jobs "
        "finished within 10 s, or 30 s for long ones). Long work may book at most half of the worker's time "
        "until a long job's deadline (`long_share_pct=50`, the default). `EDGE_MAX_PROMPT_TOKENS=2048`, so the "
        "shift logs are accepted. Before the runs, each pipeline runs 8 shift logs one at a time, so the long "
        "lane's batch time is measured as on a node that has been running (`--warm-long`).",
        "",
        "| design | load | prompts | offered | accepted | rejected (429) | 429 p50 / p99: client; server | expired "
        "| p50 | p95 | p99 (done) | deadline hit rate | short-prompt p95: done; expired as missed "
        "| long prompts: done / accepted / offered, slowest "
        "| max queue depth |",
        "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for (design, load, mix), r in results.items():
        a = r["all"]
        reject = "—"
        if r["rejected"]:
            reject = (
                f"{r['reject_p50']:.0f} / {r['reject_p99']:.0f} ms; "
                f"{r['reject_server_p50']:.0f} / {r['reject_server_p99']:.0f} ms"
            )
        lines.append(
            f"| {design} | {load}x | {mix} | {r['offered']} | {a['accepted']} | {r['rejected']} | {reject} "
            f"| {a['expired']} | {fmt_ms(a['p50'])} | {fmt_ms(a['p95'])} | {fmt_ms(a['p99'])} "
            f"| {a['hit_rate']:.0%} | {fmt_ms(r['short']['p95'])}; {fmt_ms(r['short']['p95_missed'])} "
            f"| {long_cell(r)} | {r['max_depth']} |"
        )
    lines += ["", "### Goals", "", "| goal | measured | met |", "|---|---|---|"]
    top = max(load for _, load, _ in results)
    s2 = results.get(("scheduler", top, "mixed"))
    if s2:
        short, long = s2["short"], s2["long"]
        met = short["p99"] <= DEADLINE_MS and not long["max"] > LONG_DEADLINE_MS
        lines.append(
            f"| at {top}x, accepted jobs' p99 within their deadline | short prompts: p99 {fmt_ms(short['p99'])} "
            f"(deadline {DEADLINE_MS / 1000:.0f} s); long prompts: slowest {fmt_ms(long['max'])} (deadline "
            f"{LONG_DEADLINE_MS / 1000:.0f} s); {s2['all']['expired']} expired of {s2['all']['accepted']} "
            f"| {'yes' if met else 'no'} |"
        )
        bounded = s2["max_depth"] <= DESIGNS["scheduler"]["queue_limit"] + 16
        fifo = results.get(("fifo", top, "mixed"))
        versus = f" (FIFO: {fifo['max_depth']})" if fifo else ""
        lines.append(
            f"| at {top}x, the queue stays bounded | max depth {s2['max_depth']}{versus}, "
            f"limit {DESIGNS['scheduler']['queue_limit']} waiting + jobs in flight | {'yes' if bounded else 'no'} |"
        )
        if s2["rejected"]:
            client, server = s2["reject_p99"], s2["reject_server_p99"]
            lines.append(
                f"| at {top}x, a 429 in under 50 ms (p99) | client round trip {client:.0f} ms, server {server:.0f} ms "
                f"| {'yes' if client < 50 else 'no'} |"
            )
    for design in [d for d in SETUPS if SETUPS[d][2]]:
        for load in sorted({load for _, load, _ in results}):
            mixed, only = results.get((design, load, "mixed")), results.get((SETUPS[design][2], load, "short only"))
            if mixed and only and only["short"]["p95"] == only["short"]["p95"]:
                done = mixed["short"]["p95"] / only["short"]["p95"]
                baseline = only["short"]["p95_missed"]
                ratio = mixed["short"]["p95_missed"] / baseline if baseline != float("inf") else float("nan")
                lines.append(
                    f"| {design}, at {load}x: short-prompt p95 with 5 % long ≤ 1.2x short-only p95 (expired "
                    f"jobs counted as missed) | {fmt_ms(mixed['short']['p95_missed'])} / "
                    f"{fmt_ms(only['short']['p95_missed'])} = {fmt_ratio(ratio)} (done jobs only: "
                    f"{fmt_ms(mixed['short']['p95'])} / {fmt_ms(only['short']['p95'])} = {done:.2f}x) "
                    f"| {'yes' if ratio <= 1.2 else 'no'} |"
                )
    why = [
        f"- {design}, {load}x, {mix}: {r['expired_why']}"
        for (design, load, mix), r in results.items()
        if r["all"]["expired"]
    ]
    lines += ["", "Why accepted jobs expired (the reasons they were given, by run):", "", *why] if why else []
    lines += [
        "",
        "Reading the numbers: latencies are each accepted job's total, from its creation in the database to its",
        "stored result, for jobs that finished (p99 of done jobs); the hit rate divides the jobs done within their",
        "deadline by all accepted jobs, so expired ones count as misses. The short-prompt p95 is given over done",
        "jobs, and over all accepted ones with the expired counted as infinitely late ('missed' once the p95",
        "reaches them): the goal is judged on the second, as an expired job was accepted and not served. A 429's",
        "latency is given twice: the client's round trip, and the server's own time (its `Server-Timing`",
        "header). Queue depth counts jobs waiting and in flight, sampled every 100 ms.",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--duration", type=float, default=60, help="seconds of arrivals per run (default 60)")
    parser.add_argument("--loads", default="0.5,1,2", help="multiples of measured capacity (default 0.5,1,2)")
    parser.add_argument("--designs", default=",".join(SETUPS), help=f"some of: {', '.join(SETUPS)}")
    parser.add_argument("--capacity-jobs", type=int, default=48)
    parser.add_argument("--warm-long", type=int, default=8, help="long prompts run before the runs (default 8)")
    parser.add_argument("--port", type=int, default=8767)
    parser.add_argument("--cold-runs", type=int, default=4, help="cold starts per edge scenario (default 4)")
    parser.add_argument("--no-write", action="store_true", help="print the section instead of writing it")
    parser.add_argument(
        "--long-chunk-tokens", type=int, help="the long lane's prefill chunk in the warm runs (default: the setting's)"
    )
    parser.add_argument(
        "--phases", default="edges,warm", help="edges (cold start and recovery), warm (the loads), or both"
    )
    args = parser.parse_args()
    if args.long_chunk_tokens is not None:
        for design in ("scheduler", "scheduler (long 10 s)"):
            DESIGNS[design]["long_chunk_tokens"] = args.long_chunk_tokens
    phases = set(args.phases.split(","))
    if unknown := phases - {"edges", "warm"}:
        parser.error(f"unknown phase(s): {', '.join(sorted(unknown))}")
    if "edges" in phases:
        where = "make bench-phases" if phases == {"edges"} else "make bench-overload"
        text = phases_report(where, edge_phases(args.port, args.cold_runs))
        if args.no_write:
            print(text)
        else:
            harness.write_section("overload-phases", text)
    if "warm" not in phases:
        return
    loads = [float(x) for x in args.loads.split(",")]
    designs = args.designs.split(",")
    if unknown := set(designs) - set(SETUPS):
        parser.error(f"unknown design(s): {', '.join(sorted(unknown))}")
    chunk = "" if args.long_chunk_tokens is None else f" --long-chunk-tokens {args.long_chunk_tokens}"
    command = "make bench-overload" if args.duration == 60 and args.loads == "0.5,1,2" and not chunk else (
        f"python bench/overload.py --duration {args.duration:g} --loads {args.loads}{chunk}"
    )  # fmt: skip

    short, long = prompts_by_kind()
    results, cap = {}, None
    for workers in (ONE_WORKER, LANE_WORKERS):
        chosen = [d for d in designs if SETUPS[d][1] is workers]
        if not chosen:
            continue
        with Pipeline(args.port, window_ms=WINDOW_MS, workers=workers) as pipeline:
            apply("fifo")  # no deadline while measuring what the pipeline can do
            post(pipeline, short[0])  # warm the web process and the tokenizer
            if cap is None:  # measured on one worker; every setup gets the same arrival rates
                cap = capacity(pipeline, short, args.capacity_jobs)
                print(f"capacity: {cap:.2f} jobs/s", flush=True)
            apply("scheduler")
            warm_long_lane(pipeline, long, args.warm_long)
            for design in chosen:
                apply(SETUPS[design][0])
                for load in loads:
                    baseline = SETUPS[design][2] == design  # fifo and "long 10 s" run the mixed workload only
                    mixes = [("mixed", LONG_SHARE)] + ([("short only", 0.0)] if baseline else [])
                    for mix, share in mixes:
                        key = (design, load if load != int(load) else int(load), mix)
                        print(f"{design}, {load}x, {mix} ...", flush=True)
                        r = results[key] = run(
                            pipeline, rate=cap * load, duration=args.duration, long_share=share, seed=11
                        )
                        print(
                            f"  accepted {r['all']['accepted']}, rejected {r['rejected']}, "
                            f"expired {r['all']['expired']}, p99 {fmt_ms(r['all']['p99'])}, "
                            f"hit rate {r['all']['hit_rate']:.0%}, max depth {r['max_depth']}",
                            flush=True,
                        )
    text = report(command, cap, results, args.duration)
    if args.no_write:
        print(text)
    else:
        harness.write_section("overload", text)
        print(text)


if __name__ == "__main__":
    main()
