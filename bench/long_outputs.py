"""A short request sent while another client's long answer is being written (BENCHMARKS.md, "Long outputs beside
short requests"): with long outputs in the long lane (the default, `long_output_tokens` 256), whose batch
stands aside for short batches between its output tokens, and with them kept in the short lane (as before
issue 12's change: `long_output_tokens` out of reach), where the short request waits for the whole batch.
The two settings alternate round by round in one run, on one pipeline, through the official openai client.

    python bench/long_outputs.py [--rounds 4] [--max-tokens 512]
"""

from __future__ import annotations

import argparse
import statistics
import time
from concurrent.futures import ThreadPoolExecutor

import harness
import openai_api
from harness import Pipeline

WINDOW_MS = 60
SETTINGS = {
    "long lane (default: `long_output_tokens` 256)": 256,
    "short lane (`long_output_tokens` 100000, as before)": 100_000,
}


def round_beside(client, pipeline: Pipeline, prompt: str, *, long_output_tokens: int, max_tokens: int) -> dict:
    """A long answer starts streaming; a second later a short request is sent: its first token and its end, and
    the long answer's end and length."""
    pipeline.update_settings(long_output_tokens=long_output_tokens)
    with ThreadPoolExecutor(1) as pool:
        long = pool.submit(openai_api.chat, client, prompt + " Explain in detail.", stream=True, max_tokens=max_tokens)
        time.sleep(1.0)  # the long answer is being written
        short = openai_api.chat(client, prompt, stream=True)
        answer = long.result()
    return {"ttft_ms": short["ttft_ms"], "short_ms": short["total_ms"], "long_ms": answer["total_ms"],
            "long_tokens": answer["tokens"]}  # fmt: skip


def report(command: str, engine: str, alone: float, rows: dict[str, list[dict]], max_tokens: int) -> str:
    lines = [
        "## Long outputs beside short requests",
        "",
        f"Command: `{command}`. {harness.machine()}; the default model (SmolLM2-135M-Instruct), engine {engine}, "
        f"one worker serving both lanes, window {WINDOW_MS} ms, greedy, prompt cache off, gunicorn as `make run` "
        f"serves. Each round: a client streams an answer of up to {max_tokens} tokens; a second later another "
        f"sends a short request ({openai_api.NEW_TOKENS} tokens). The two settings alternate round by round.",
        "",
        f"A short request alone: first token p50 {alone:.0f} ms.",
        "",
        "| long answers run in the | rounds | short request: first token p50 | short request: total p50 "
        "| long answer: total p50 | long answer: tokens p50 |",
        "|---|---|---|---|---|---|",
    ]
    for name, results in rows.items():
        p50 = {key: statistics.median(row[key] for row in results) for key in results[0]}
        lines.append(
            f"| {name} | {len(results)} | {p50['ttft_ms']:.0f} ms | {p50['short_ms']:.0f} ms | "
            f"{p50['long_ms']:.0f} ms | {p50['long_tokens']:.0f} |"
        )
    (long_lane, short_lane) = (rows[name] for name in SETTINGS)
    ratio = statistics.median(r["ttft_ms"] for r in long_lane) / statistics.median(r["ttft_ms"] for r in short_lane)
    lines += [
        "",
        f"The short request's first token with long answers in the long lane: x{ratio:.2f} of its time with them in "
        "the short lane, where it waits for the long answer's batch to end. The long answer pays for the short "
        "batches it stands aside for (its total above).",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--max-tokens", type=int, default=512)
    parser.add_argument("--port", type=int, default=8767)
    parser.add_argument("--no-write", action="store_true", help="print the section, leave BENCHMARKS.md")
    args = parser.parse_args()
    harness.configure(EDGE_CACHE_ENABLED="false")
    prompts = harness.load_prompts(args.rounds + 4)
    with Pipeline(args.port, window_ms=WINDOW_MS) as pipeline:
        client = openai_api.client_for(pipeline)
        served = client.models.list().data[0]
        openai_api.MODEL, engine = served.id, ", ".join(served.model_extra["engines"])
        openai_api.chat(client, prompts[0], stream=False)  # the web workers' first request loads what they load
        alone = statistics.median(openai_api.chat(client, p, stream=True)["ttft_ms"] for p in prompts[-4:])
        rows: dict[str, list[dict]] = {name: [] for name in SETTINGS}
        for prompt in prompts[: args.rounds]:
            for name, tokens in SETTINGS.items():
                rows[name].append(
                    round_beside(client, pipeline, prompt, long_output_tokens=tokens, max_tokens=args.max_tokens)
                )
    text = report("make bench-long-outputs", engine, alone, rows, args.max_tokens)
    print(text)
    if not args.no_write:
        harness.write_section("long-outputs", text)


if __name__ == "__main__":
    main()
