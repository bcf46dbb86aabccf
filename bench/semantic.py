"""The semantic prompt cache's precision on a labelled set of request pairs (bench/semantic_set.jsonl): paraphrases
(should match), near-misses (another id or number: must never match) and different requests with the same ids
(another defect, the other side: should not match), at several thresholds, with and without the codes guard.

    python bench/semantic.py            # also part of `make bench-quality`
    python bench/semantic.py --no-write # print only

Each pair is matched as the worker matches: the first request's entry is stored, the second one looks it up
(edgeportal.prompts.semantic_cache.best_match), on the reranker's embedding model (EDGE_RERANKER_MODEL).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "edgeportal.settings")

SEMANTIC_SET = ROOT / "bench" / "semantic_set.jsonl"
THRESHOLDS = (0.85, 0.9, 0.93, 0.95, 0.97)
KINDS = ("paraphrase", "near_miss", "different")


def labelled_pairs(path: Path = SEMANTIC_SET) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def measure(embedder, pairs: list[dict], thresholds=THRESHOLDS) -> dict:
    """Per threshold: the pairs of each kind that matched, with the guard (as the cache does) and on the
    embedding alone; and each pair's similarity."""
    import numpy as np

    from edgeportal.prompts.semantic_cache import VALUE_SEPARATOR, Entry, best_match, semantic_codes

    # A pair's texts hold one value per line, as a template's free-text values (VALUE_SEPARATOR in the job).
    vectors = embedder.embed([text for pair in pairs for text in (pair["a"], pair["b"])]).numpy()
    similarities, report = [], {}
    for index, pair in enumerate(pairs):
        stored, asked = vectors[2 * index], vectors[2 * index + 1]
        codes_a, codes_b = (semantic_codes(pair[side].replace("\n", VALUE_SEPARATOR)) for side in ("a", "b"))
        entry = Entry(pair["a"], codes_a, stored.astype(np.float32), "", 0, 0, "stop", 0.0)
        entry = Entry.loads(entry.dumps())  # as kept in Redis: float16
        _, similarity = best_match(asked, entry.codes, [entry], 2.0)  # the cosine, whatever the threshold
        readable = embedder.reads_whole(pair["a"]) and embedder.reads_whole(pair["b"])
        similarities.append(
            {**pair, "similarity": round(similarity, 4), "same_codes": codes_a == codes_b, "readable": readable}
        )
    for threshold in thresholds:
        guarded = {kind: 0 for kind in KINDS}
        alone = {kind: 0 for kind in KINDS}
        for pair in similarities:
            reached = pair["similarity"] >= threshold - 1e-3  # as best_match: float16 rounding
            alone[pair["kind"]] += reached
            guarded[pair["kind"]] += reached and pair["same_codes"] and pair["readable"]
        report[threshold] = {"guarded": guarded, "embedding_alone": alone}
    counts = {kind: sum(pair["kind"] == kind for pair in pairs) for kind in KINDS}
    counts["unreadable"] = sum(not pair["readable"] for pair in similarities)
    return {"thresholds": report, "counts": counts, "pairs": similarities, "embed_ms": embed_cost_ms(embedder, pairs)}


def embed_cost_ms(embedder, pairs: list[dict], batch: int = 8, repeats: int = 10) -> float:
    """What a batch of 8 asking jobs pays before the model runs: one embedding call for their texts (median)."""
    import statistics
    import time

    texts = [pair["b"] for pair in pairs[:batch]]
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        embedder.embed(texts)
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def precision(hits: dict) -> float | None:
    total = sum(hits.values())
    return hits["paraphrase"] / total if total else None


def table(report: dict) -> str:
    counts = report["counts"]
    lines = [
        "| threshold | paraphrases matched (recall) | near-misses matched | different matched | precision | "
        "embedding alone: near-misses / different matched, precision |",
        "|---|---|---|---|---|---|",
    ]

    def share(value):
        return "-" if value is None else f"{value:.2f}"

    for threshold, figures in report["thresholds"].items():
        guarded, alone = figures["guarded"], figures["embedding_alone"]
        lines.append(
            f"| {threshold} | {guarded['paraphrase']}/{counts['paraphrase']} "
            f"({guarded['paraphrase'] / counts['paraphrase']:.2f}) | {guarded['near_miss']}/{counts['near_miss']} | "
            f"{guarded['different']}/{counts['different']} | {share(precision(guarded))} | "
            f"{alone['near_miss']} / {alone['different']}, {share(precision(alone))} |"
        )
    return "\n".join(lines)


def section(report: dict, *, command: str, embedder_name: str) -> str:
    from harness import machine

    counts = report["counts"]
    missed = [pair for pair in report["pairs"] if pair["kind"] != "paraphrase" and pair["similarity"] >= 0.95]
    worst = max(missed, key=lambda pair: pair["similarity"], default=None)
    lines = [
        "## Semantic prompt cache: precision on paraphrases and near-misses",
        "",
        f"Command: `{command}`  ",
        f"Machine: {machine()}.  ",
        f"Embedding model: {embedder_name} (the reranker's). Set: `bench/semantic_set.jsonl`, "
        f"{sum(counts[kind] for kind in KINDS)} pairs in en/zh/es/de: {counts['paraphrase']} paraphrases, "
        f"{counts['near_miss']} near-misses (another id or number), {counts['different']} different requests with "
        f"the same ids (another defect, the other side, another quantity). {counts['unreadable']} pairs hold text "
        "the encoder cannot read whole (Chinese for the default encoder: most characters are unknown to it, so two "
        "Chinese requests embed alike): the cache neither looks them up nor keeps them, and they never match.",
        "",
        table(report),
        "",
        "Matched: the second request of a pair would take the first one's answer. The cache's rule: the same codes "
        "(ids, numbers, stand-alone capitals, polar words such as left/right, 左/右, nicht) and a cosine at or above "
        "the template's threshold. Precision: paraphrases among all pairs matched. The last column is the same "
        "threshold on the embedding alone, to show what the codes guard adds. The polar words were chosen while "
        "this set was written: it guards against regressions, it is not a held-out measure. A different request "
        "whose difference is in no code or polar word (“current” / “voltage fluctuation”: cosine 0.90) is left "
        "to the threshold alone.",
        "",
        f"Cost: a batch with 8 jobs that ask pays one embedding call for their texts before the model runs, "
        f"{report['embed_ms']:.1f} ms (median of 10), and one Redis read per group; a hit saves the model's whole "
        "batch time for its row, not its wait in the queue (the lookup runs in the worker, where the encoder is).",
    ]
    if worst:
        a, b = (worst[side].replace("\n", " / ") for side in ("a", "b"))
        lines += [
            "",
            f"Closest pair that must not match: “{a}” / “{b}” ({worst['kind']}, cosine {worst['similarity']}, "
            f"{'kept apart by the guard' if not worst['same_codes'] else 'same codes'}).",
        ]
    return "\n".join(lines)


def run(*, write: bool, command: str) -> dict:
    import django

    django.setup()
    from django.conf import settings

    from inference.embedder import load_embedder

    embedder = load_embedder(settings.EDGE_RERANKER_MODEL or None)
    report = measure(embedder, labelled_pairs())
    print(table(report), flush=True)
    if write:
        from harness import write_section

        write_section("semantic", section(report, command=command, embedder_name=embedder.name))
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--no-write", action="store_true", help="print the table, leave BENCHMARKS.md alone")
    args = parser.parse_args()
    run(write=not args.no_write, command="python bench/semantic.py")


if __name__ == "__main__":
    main()
