"""The transformers engine's KV cache (BENCHMARKS.md, "KV cache"): a decoding step's time with transformers'
DynamicCache, which copies the whole cache at each step, against inference.kv_cache's growing cache, which
writes only the step's tokens. Side by side, in turns, from the same prefilled prompts: 8 short prompts of the
workload (the short lane) and 4 of its shift logs (the long lane), greedy. The tokens each makes are compared.

    python bench/kv_cache.py [--steps N] [--rounds N] [--no-write]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

import harness

STEPS = 64
ROUNDS = 6
KINDS = ("concatenation", "growing")


def decode_steps(engine, prompts: list[str], steps: int = STEPS, rounds: int = ROUNDS) -> dict:
    """Prefill the prompts once; then, in turns, `steps` greedy steps from a copy of that cache of each kind.
    Each kind's ms per step (one figure a round), and whether both made the same tokens."""
    import torch
    from transformers import DynamicCache

    from inference.decoding import GREEDY
    from inference.kv_cache import growing_cache, room_for

    encoded = engine._encode(prompts, None, [GREEDY] * len(prompts))
    model = engine.model
    with torch.inference_mode():
        prefilled = DynamicCache(config=model.config)
        first = model(**encoded, past_key_values=prefilled, use_cache=True, logits_to_keep=1).logits.argmax(-1)
        made = {kind: [] for kind in KINDS}
        times = {kind: [] for kind in KINDS}
        room = room_for(encoded.input_ids.shape[1], steps)  # as the engine makes it
        for _ in range(rounds):
            for kind in KINDS:
                cache = (
                    DynamicCache(config=model.config) if kind == "concatenation" else growing_cache(model.config, room)
                )
                for index, layer in enumerate(prefilled.layers):
                    cache.update(layer.keys.clone(), layer.values.clone(), index)
                token, mask, tokens = first, encoded.attention_mask, []
                started = time.perf_counter()
                for _ in range(steps):
                    mask = torch.cat([mask, mask.new_ones(len(prompts), 1)], 1)
                    out = model(input_ids=token, attention_mask=mask, past_key_values=cache, use_cache=True)
                    token = out.logits[:, -1:].argmax(-1)
                    tokens.append(token)
                times[kind].append((time.perf_counter() - started) * 1000 / steps)
                made[kind] = torch.cat(tokens, 1).tolist()
    return {"rows": len(prompts), "context": encoded.input_ids.shape[1], "ms_per_step": times,
            "same_tokens": made["concatenation"] == made["growing"]}  # fmt: skip


def section(results: dict[str, dict], *, command: str, steps: int) -> str:
    lines = [
        "## KV cache (transformers engine)",
        "",
        f"Command: `{command}`. Machine: {harness.machine()}. Default model (SmolLM2-135M-Instruct, float32), "
        f"greedy, {steps} decoding steps from the same prefilled prompts; the two caches take turns, and each "
        "figure is the median of the rounds.",
        "",
        "| prompts | rows x context | DynamicCache (ms/step) | growing cache (ms/step) | x | same tokens |",
        "|---|---|---:|---:|---:|---|",
    ]
    for name, r in results.items():
        before, now = (statistics.median(r["ms_per_step"][kind]) for kind in KINDS)
        lines.append(f"| {name} | {r['rows']} x {r['context']} | {before:.1f} | {now:.1f} | {before / now:.2f} | "
                     f"{'yes' if r['same_tokens'] else 'no'} |")  # fmt: skip
    rounds = "; ".join(
        f"{name}: "
        + ", ".join(f"{a:.0f}/{b:.0f}" for a, b in zip(*(r["ms_per_step"][kind] for kind in KINDS), strict=True))
        for name, r in results.items()
    )
    lines += [
        "",
        f"Each round (ms/step, DynamicCache/growing): {rounds}. Where the two caches' rounds overlap, the "
        "difference is within this machine's noise.",
        "",
        "DynamicCache appends each step with `torch.cat`, a copy of every layer's whole cache; the growing cache "
        "(`inference/kv_cache.py`) keeps room after the filled part and writes only the new tokens. The copy "
        "grows with rows times context, so it shows on the long lane and not on short prompts.",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=STEPS)
    parser.add_argument("--rounds", type=int, default=ROUNDS)
    parser.add_argument("--no-write", action="store_true", help="print the table, leave BENCHMARKS.md alone")
    args = parser.parse_args()
    from inference.runtime import load_engine

    engine = load_engine(device="cpu", dtype="float32")
    rows = [json.loads(line) for line in harness.WORKLOAD.read_text().splitlines() if line.strip()]
    lanes = {
        "short (the workload's first 8)": [row["prompt"] for row in rows if row["kind"] != "long-log"][:8],
        "long (4 shift logs)": [row["prompt"] for row in rows if row["kind"] == "long-log"][:4],
    }
    results = {}
    for name, prompts in lanes.items():
        results[name] = decode_steps(engine, prompts, args.steps, args.rounds)
        print(name, json.dumps(results[name]["ms_per_step"]), "same tokens:", results[name]["same_tokens"], flush=True)
    command = "make bench-kv-cache" if not sys.argv[1:] else "python bench/kv_cache.py " + " ".join(sys.argv[1:])
    text = section(results, command=command, steps=args.steps)
    print(text)
    if not args.no_write:
        harness.write_section("kv-cache", text)


if __name__ == "__main__":
    main()
