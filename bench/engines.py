"""The engines side by side on the default model (BENCHMARKS.md, "Engines"): raw generate_batch at batch 1
and 8 on the factory workload (every prompt of it by default), greedy, 32 new tokens, and how many outputs at
each batch size match the transformers float32 reference run one prompt at a time. Then a pipeline (web server
and worker as `make run` starts them) on each engine that runs on this machine: one request at a time (end to
end) and a saturating burst.

    python bench/engines.py [--prompts N]
"""

from __future__ import annotations

import argparse
import statistics
import time

import harness
from harness import Pipeline, load_prompts

NEW_TOKENS = 32
PIPELINE_PROMPTS = 16  # the pipeline's burst: the workload's first prompts, all short (the node's default limits)


def raw_run(engine, prompts: list[str], size: int) -> tuple[float, list[str]]:
    from inference.generation import GenerationParams

    engine.generate_batch(prompts[:size], GenerationParams(max_new_tokens=4))  # its first batch of this size
    started = time.perf_counter()
    texts = []
    for start in range(0, len(prompts), size):
        batch = engine.generate_batch(prompts[start : start + size], GenerationParams(max_new_tokens=NEW_TOKENS))
        texts += [generation.text for generation in batch.generations]
    return len(prompts) / (time.perf_counter() - started), texts


# The pipelines: a worker per engine, and per weights for llama.cpp (make run's EDGE_ENGINE=auto takes float16
# where its check passes, as on the default model).
PIPELINES = {
    "transformers": {"EDGE_ENGINE": "transformers"},
    "llama.cpp, float16 weights": {"EDGE_ENGINE": "llama.cpp", "EDGE_LLAMA_WEIGHTS": "float16"},
    "llama.cpp, float32 weights": {"EDGE_ENGINE": "llama.cpp", "EDGE_LLAMA_WEIGHTS": "float32"},
}


def pipeline_run(engine: str, prompts: list[str], port: int) -> dict:
    """One request at a time (p50 end to end, as the client saw it), then all at once (requests a second)."""
    worker = "bench-" + "".join(c for c in engine if c.isalnum())
    with Pipeline(port, window_ms=60, workers={worker: PIPELINES[engine]}) as p:
        p.submit(prompts[0], deadline_ms=300_000)
        totals = []
        for prompt in prompts[:8]:
            sent = time.perf_counter()
            p.wait([p.submit(prompt, deadline_ms=300_000)["id"]], timeout=120)
            totals.append((time.perf_counter() - sent) * 1000)
        started = time.time()
        ids = [p.submit(prompt, deadline_ms=300_000)["id"] for prompt in prompts]
        jobs = p.wait(ids)
        burst_s = max(job.finished_at.timestamp() for job in jobs) - started
        return {"single_p50": statistics.median(totals), "saturated": len(prompts) / burst_s}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prompts", type=int, help="only the first N prompts of the workload (default: all)")
    parser.add_argument("--port", type=int, default=8767)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    harness.configure(EDGE_CACHE_ENABLED="false")
    prompts = load_prompts(args.prompts) if args.prompts else harness.workload()

    from inference.llama_engine import LlamaCppEngine, available, load_llama_engine
    from inference.model_files import default_gguf_path, model_revision
    from inference.runtime import load_engine, prepare_model_folder

    reference = load_engine(None, dtype="float32", device="cpu")
    rows = [("transformers, float32 (the reference)", reference)]
    why_not = available()
    if why_not is None:
        folder = prepare_model_folder(None)
        fast = load_llama_engine(folder, name="default", revision=model_revision(folder))
        half = load_llama_engine(folder, name="default", revision=model_revision(folder), dtype="float16")
        shipped = LlamaCppEngine(
            default_gguf_path(), fast.tokenizer, identity=fast.identity
        )  # the 4-bit file as shipped
        rows += [
            ("llama.cpp, float32 GGUF of the same weights", fast),
            ("llama.cpp, float16 GGUF of the same weights (`make run`'s default)", half),
            ("llama.cpp, the shipped Q4_1 GGUF", shipped),
        ]
    results = {}
    for name, engine in rows:
        results[name] = {size: raw_run(engine, prompts, size) for size in (1, 8)}
        print(name, {size: f"{r[0]:.2f} req/s" for size, r in results[name].items()}, flush=True)
    del rows, reference
    burst = prompts[:PIPELINE_PROMPTS]
    pipelines = {}
    for offset, engine in enumerate(PIPELINES if why_not is None else ["transformers"]):
        pipelines[engine] = pipeline_run(engine, burst, args.port + offset)
    print(pipelines, flush=True)

    base = results["transformers, float32 (the reference)"]
    lines = [
        "## Engines: transformers and llama.cpp on the same model",
        "",
        f"Command: `make bench-engines`. {harness.machine()}; the default model (SmolLM2-135M-Instruct), "
        f"{len(prompts)} prompts of the factory workload, chat template, greedy, {NEW_TOKENS} new tokens. "
        "llama.cpp: llama-cpp-python 0.3.36 built for this CPU without AMX (scripts/build-llama-cpp.sh).",
        "",
        "| engine | batch 1 | batch 8 | batch 8 vs the reference | outputs identical to the reference's "
        "(one at a time): at batch 1 | at batch 8 |",
        "|---|---|---|---|---|---|",
    ]
    for name, runs in results.items():
        same = {size: sum(a == b for a, b in zip(runs[size][1], base[1][1], strict=True)) for size in (1, 8)}
        share = {size: f"{same[size]} of {len(prompts)} ({same[size] / len(prompts):.0%})" for size in (1, 8)}
        lines.append(f"| {name} | {runs[1][0]:.2f} req/s | {runs[8][0]:.2f} req/s | {runs[8][0] / base[8][0]:.2f}x "
                     f"| {share[1]} | {share[8]} |")  # fmt: skip
    if why_not is not None:
        lines.append(f"\nllama.cpp did not run here: {why_not}.")
    lines += [
        "",
        f"Through the pipeline (`make run`'s web server and one worker, window 60 ms, default settings; "
        f"the first {len(burst)} prompts):",
        "",
    ]
    lines += ["| engine | one request at a time, p50 end to end | saturated (all at once) |", "|---|---|---|"]
    for engine, numbers in pipelines.items():
        lines.append(f"| {engine} | {numbers['single_p50']:.0f} ms | {numbers['saturated']:.2f} req/s |")
    text = "\n".join(lines) + "\n"
    print(text)
    if not args.no_write:
        harness.write_section("engines", text)


if __name__ == "__main__":
    main()
