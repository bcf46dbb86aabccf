"""GPU smoke check: the default model (or EDGE_MODEL) on a CUDA device, one batch of workload prompts, its
time, and how its greedy outputs agree with CPU float32, the reference.

Run with `scripts/gpu-smoke.sh` on a machine with an accelerator. Without one it says so and exits 0, so
CI and a CPU node can run it. It prints; it never asserts a time.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from inference.generation import GenerationParams  # noqa: E402
from inference.runtime import load_engine  # noqa: E402

WORKLOAD = ROOT.parent / "shared" / "workload" / "factory_prompts.jsonl"
FALLBACK_PROMPTS = [
    "Camera C3 detected a 4 mm scratch on door panel 42. Write a short defect description for the QA inspector.",
    "Translate this work order into Spanish: replace worn belt on conveyor 2 and check tension.",
    "The line manager needs a notice in English saying line A will restart in 10 minutes.",
    "Press line PLC P3 reports current fluctuation. Give inspection steps for the technician.",
]


def prompts(count: int) -> list[str]:
    found = FALLBACK_PROMPTS
    if WORKLOAD.is_file():
        found = [json.loads(line)["prompt"] for line in WORKLOAD.read_text().splitlines() if line.strip()]
    return [found[i % len(found)] for i in range(count)]


def agreement(reference: list[str], other: list[str]) -> tuple[int, float]:
    """Outputs identical to the reference, and the mean share of each reference output's characters that
    the other output repeats before it first differs (1.0: identical)."""
    identical = sum(a == b for a, b in zip(reference, other, strict=True))
    shares = []
    for a, b in zip(reference, other, strict=True):
        same = next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b)))
        shares.append(same / max(1, len(a)))
    return identical, statistics.fmean(shares)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--new-tokens", type=int, default=32)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--device", default="cuda")
    args = parser.parse_args()
    import torch

    if not torch.cuda.is_available():
        print("gpu-smoke: skipped, no CUDA device here (torch.cuda.is_available() is False)")
        return 0
    spec = os.environ.get("EDGE_MODEL") or None
    batch = prompts(args.batch)
    params = GenerationParams(max_new_tokens=args.new_tokens)
    cpu = load_engine(spec, dtype="float32", device="cpu")
    reference = [g.text for g in cpu.generate_batch(batch, params).generations]
    cpu_ms = statistics.median(cpu.generate_batch(batch, params).inference_ms for _ in range(2))
    print(
        f"gpu-smoke: {cpu.identity.model} rev {cpu.identity.revision}, "
        f"batch of {len(batch)}, {args.new_tokens} new tokens"
    )
    print(f"  cpu float32 (reference): {cpu_ms:.0f} ms per batch")
    del cpu
    for dtype in ("", "float32"):  # the device's default dtype, then float32
        engine = load_engine(spec, dtype=dtype, device=args.device)
        times = [engine.generate_batch(batch, params).inference_ms for _ in range(args.runs)]
        outputs = [g.text for g in engine.generate_batch(batch, params).generations]
        identical, share = agreement(reference, outputs)
        print(
            f"  {engine.identity.device} {engine.identity.dtype}: {statistics.median(times):.0f} ms per batch "
            f"(median of {args.runs}; {cpu_ms / statistics.median(times):.1f}x the CPU), "
            f"{identical}/{len(batch)} outputs identical to CPU float32, "
            f"{share:.0%} of characters before the first difference"
        )
        del engine
        torch.cuda.empty_cache()
    return 0


if __name__ == "__main__":
    sys.exit(main())
