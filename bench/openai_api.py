"""The OpenAI-compatible API on the default model, through the official openai package (BENCHMARKS.md,
"OpenAI-compatible API and streaming"): time to first token at low load against the window and the model's
first step, decode throughput with streaming on and off, 64 concurrent streams, and the openai client
against /api/jobs on the same workload. One pipeline, every phase side by side in one run.

    python bench/openai_api.py [--jobs 32] [--streams 64]
"""

from __future__ import annotations

import argparse
import statistics
import time
from concurrent.futures import ThreadPoolExecutor

import harness
from harness import Pipeline, percentile

WINDOW_MS = 60
DEADLINE_MS = 300_000  # the phases measure the model and the API, not admission: nothing is refused
NEW_TOKENS = 32


def client_for(pipeline: Pipeline):
    import openai

    return openai.OpenAI(base_url=f"http://127.0.0.1:{pipeline.port}/v1", api_key=pipeline.token, max_retries=0,
                         timeout=600)  # fmt: skip


def chat(client, prompt: str, *, stream: bool, max_tokens: int = NEW_TOKENS) -> dict:
    """One request; the client's time to its first text and to its end, and the server's latency record."""
    sent = time.perf_counter()
    first = None
    body = {"messages": [{"role": "user", "content": prompt}], "max_tokens": max_tokens,
            "extra_body": {"deadline_ms": DEADLINE_MS}}  # fmt: skip
    if not stream:
        answer = client.chat.completions.create(model=MODEL, **body)
        total = (time.perf_counter() - sent) * 1000
        return {"total_ms": total, "tokens": answer.usage.completion_tokens, "server": answer.model_extra["edgeportal"]}
    tokens, server = 0, {}
    for chunk in client.chat.completions.create(model=MODEL, stream=True, stream_options={"include_usage": True},
                                                **body):  # fmt: skip
        if chunk.choices and chunk.choices[0].delta.content and first is None:
            first = (time.perf_counter() - sent) * 1000
        if chunk.usage:
            tokens, server = chunk.usage.completion_tokens, chunk.model_extra["edgeportal"]
    return {"ttft_ms": first, "total_ms": (time.perf_counter() - sent) * 1000, "tokens": tokens, "server": server}


def run_all(function, items, concurrency: int) -> tuple[list, float]:
    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        results = list(pool.map(function, items))
    return results, time.perf_counter() - started


def low_load(client, prompts: list[str]) -> dict:
    """One request at a time, streaming: the client's first token against window + the model's first step."""
    rows = [chat(client, prompt, stream=True) for prompt in prompts]
    ttft = [row["ttft_ms"] for row in rows if row["ttft_ms"] is not None]
    # The model's first step as the worker measured it: first token minus the waits before inference.
    first_step = [r["server"]["time_to_first_token_ms"] - r["server"]["queue_wait_ms"] - r["server"]["window_wait_ms"]
                  for r in rows]  # fmt: skip
    return {
        "ttft_p50": percentile(ttft, 0.5),
        "total_p50": percentile([row["total_ms"] for row in rows], 0.5),
        "window_p50": percentile([r["server"]["window_wait_ms"] + r["server"]["queue_wait_ms"] for r in rows], 0.5),
        "first_step_p50": percentile(first_step, 0.5),
        "count": len(rows),
    }


def throughput(client, prompts: list[str], *, stream: bool) -> float:
    """Completion tokens per second of a burst of concurrent requests."""
    rows, wall_s = run_all(lambda p: chat(client, p, stream=stream), prompts, len(prompts))
    return sum(row["tokens"] for row in rows) / wall_s


def api_jobs_throughput(pipeline: Pipeline, prompts: list[str]) -> float:
    """The same burst through /api/jobs (the harness reads the results from the database, off the clock of
    the node: its own finish times)."""
    from edgeportal.jobs.models import Job

    started = time.time()
    answers, _ = run_all(lambda p: pipeline.submit(p, deadline_ms=DEADLINE_MS), prompts, len(prompts))
    jobs = pipeline.wait([answer["id"] for answer in answers])
    wall_s = max(job.finished_at.timestamp() for job in jobs) - started
    return sum(job.output_tokens for job in jobs if job.status == Job.Status.DONE) / wall_s


def streams(client, prompts: list[str]) -> dict:
    rows, wall_s = run_all(lambda p: chat(client, p, stream=True), prompts, len(prompts))
    ttft = [row["ttft_ms"] for row in rows if row["ttft_ms"] is not None]
    totals = [row["total_ms"] for row in rows]
    return {
        "completed": sum(1 for row in rows if row["tokens"] > 0),
        "count": len(rows),
        **{f"ttft_p{q}": percentile(ttft, q / 100) for q in (50, 95, 99)},
        **{f"total_p{q}": percentile(totals, q / 100) for q in (50, 95, 99)},
        "wall_s": wall_s,
    }


def beside_open_stream(client, prompts: list[str]) -> dict:
    """A short request's first token alone; 30 ms after another client opened its stream (the two share a
    window: the open stream holds nothing up); and while another client's 256-token generation runs (the
    worker is busy with it: a batch is not preempted)."""
    alone = [chat(client, prompt, stream=True)["ttft_ms"] for prompt in prompts[:4]]
    second, busy = [], []
    with ThreadPoolExecutor(1) as pool:
        for prompt in prompts[:4]:
            first = pool.submit(chat, client, prompt + " In one line.", stream=True)
            time.sleep(0.03)
            second.append(chat(client, prompt, stream=True)["ttft_ms"])
            first.result()
        for prompt in prompts[:4]:
            long = pool.submit(chat, client, prompt + " Explain in detail.", stream=True, max_tokens=256)
            time.sleep(1.0)  # the long stream is open and decoding
            busy.append(chat(client, prompt, stream=True)["ttft_ms"])
            long.result()
    return {"alone": statistics.median(alone), "second": statistics.median(second), "busy": statistics.median(busy)}


def report(command: str, results: dict) -> str:
    low, s = results["low"], results["streams"]
    overhead = low["ttft_p50"] - low["window_p50"] - low["first_step_p50"]
    on, off = results["stream_on"], results["stream_off"]
    lines = [
        "## OpenAI-compatible API and streaming",
        "",
        f"Command: `{command}`. {harness.machine()}; the default model (SmolLM2-135M-Instruct, float32), "
        f"engine {results['engine']}, window {WINDOW_MS} ms, {NEW_TOKENS} new tokens, greedy, prompt cache off, "
        "gunicorn as `make run` serves.",
        "",
        "| measure | value | goal |",
        "|---|---|---|",
        f"| time to first token at low load, p50 (client, {low['count']} requests one at a time) | "
        f"{low['ttft_p50']:.0f} ms | |",
        f"| of which: queue and window wait (the window closes after {WINDOW_MS} ms), p50 | "
        f"{low['window_p50']:.0f} ms | |",
        f"| of which: the model's prefill and first decode step, p50 (worker) | {low['first_step_p50']:.0f} ms | |",
        f"| the rest (HTTP, entry, admission, Redis, SSE), p50 | {overhead:.0f} ms | ≤ 20 ms |",
        f"| total latency at low load, p50 | {low['total_p50']:.0f} ms | |",
        f"| decode throughput, streaming off ({results['jobs']} concurrent requests) | {off:.1f} tokens/s | |",
        f"| decode throughput, streaming on | {on:.1f} tokens/s ({on / off:.2f} of off) | ≥ 0.95 |",
        f"| {s['count']} concurrent streams: completed | {s['completed']} of {s['count']} | all |",
        f"| their time to first token p50 / p95 / p99 | {s['ttft_p50']:.0f} / {s['ttft_p95']:.0f} / "
        f"{s['ttft_p99']:.0f} ms | |",
        f"| their total p50 / p95 / p99 | {s['total_p50']:.0f} / {s['total_p95']:.0f} / {s['total_p99']:.0f} ms | |",
        f"| first token of a short request alone, p50 (4 requests) | {results['beside']['alone']:.0f} ms | |",
        f"| ... sent 30 ms after another client opened its stream, p50 | {results['beside']['second']:.0f} ms "
        "| not delayed |",
        f"| ... sent while another client's 256-token generation streams, p50 | {results['beside']['busy']:.0f} ms "
        "| (the batch in progress) |",
        f"| throughput, openai client against /api/jobs (same {results['jobs']} requests) | "
        f"{results['openai']:.1f} / {results['api_jobs']:.1f} tokens/s ({results['openai'] / results['api_jobs']:.2f}) "
        "| ≥ 0.95 |",
        "",
        f"The {s['count']} streams are {s['count']} jobs sent at once: they run in batches of `max_batch_size`, so a "
        "stream's first token waits for the batches ahead of it; every stream stays open meanwhile, none stalls. "
        "The 256-token generation goes to the long lane (`long_output_tokens`), whose batch stands aside for the "
        'short request between its output tokens (BENCHMARKS.md, "Long outputs beside short requests").',
    ]
    return "\n".join(lines) + "\n"


MODEL = ""


def main() -> None:
    global MODEL
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=32)
    parser.add_argument("--streams", type=int, default=64)
    parser.add_argument("--port", type=int, default=8766)
    parser.add_argument("--no-write", action="store_true", help="print the section, leave BENCHMARKS.md")
    args = parser.parse_args()
    harness.configure(EDGE_CACHE_ENABLED="false")
    prompts = harness.load_prompts(max(args.jobs, args.streams))
    with Pipeline(args.port, window_ms=WINDOW_MS) as pipeline:
        client = client_for(pipeline)
        served = client.models.list().data[0]
        MODEL, engine = served.id, ", ".join(served.model_extra["engines"])
        chat(client, prompts[0], stream=False)  # the web workers' first request loads what they load lazily
        results = {"jobs": args.jobs, "engine": engine, "low": low_load(client, prompts[:12])}
        burst = prompts[: args.jobs]
        # Interleaved, twice each: the two settings see the same machine state.
        offs, ons, opens, apis = [], [], [], []
        for _ in range(2):
            offs.append(throughput(client, burst, stream=False))
            ons.append(throughput(client, burst, stream=True))
            apis.append(api_jobs_throughput(pipeline, burst))
        opens = offs  # the openai client's non-streamed burst is the same requests as "streaming off"
        results.update(stream_off=statistics.mean(offs), stream_on=statistics.mean(ons))
        results.update(openai=statistics.mean(opens), api_jobs=statistics.mean(apis))
        results["streams"] = streams(client, prompts[: args.streams])
        results["beside"] = beside_open_stream(client, prompts)
    command = "make bench-openai"
    text = report(command, results)
    print(text)
    if not args.no_write:
        harness.write_section("openai", text)


if __name__ == "__main__":
    main()
