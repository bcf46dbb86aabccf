"""Language check benchmark: lingua on the labelled factory texts, in high- and low-accuracy mode.

Run with `.venv/bin/python bench/languages.py` (no Django, no Redis). Each mode runs in a fresh process, so its
build time and memory are its own (lingua caches models per process). It prints, per mode: the detector's build
time and memory, accuracy per language with the confusion, detection time per text, and how
`language_matches` judges the first three words of each text against each of the three languages (the right
one must match, the other two must not). `--write` also replaces its section of BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SAMPLES = ROOT / "tests" / "outputs" / "language_samples.jsonl"
LABELS = ("zh", "en", "es")
MODES = ("high", "low")
PASSES = 5  # detection times are taken over this many passes of the set


def samples() -> list[dict]:
    return [json.loads(line) for line in SAMPLES.read_text().splitlines() if line.strip()]


def first_words(text: str, language: str, count: int = 3) -> str:
    """A short screen notice cut from a sample: its first words (Chinese, without spaces: 2 characters a word)."""
    return text[: 2 * count] if language == "zh" else " ".join(text.split()[:count])


def resident_mib() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def measure(mode: str) -> dict:
    """One mode, in this process: build the detector the module would use (low: the same candidates with
    lingua's low-accuracy mode), then detect and judge every sample."""
    from lingua import LanguageDetectorBuilder

    from edgeportal.outputs import language

    before = resident_mib()
    started = time.perf_counter()
    if mode == "high":
        language.language_detector()
    else:
        builder = LanguageDetectorBuilder.from_languages(*(language._LANGUAGES[c] for c in language.CANDIDATES))
        language._detector = builder.with_low_accuracy_mode().with_preloaded_language_models().build()
    build_s = time.perf_counter() - started
    memory_mib = resident_mib() - before

    rows = samples()
    detected = [language.detect_language(row["text"]) for row in rows]
    times_ms = []
    for _ in range(PASSES):
        for row in rows:
            started = time.perf_counter()
            language.detect_language(row["text"])
            times_ms.append((time.perf_counter() - started) * 1000)

    judged = Counter()  # (right language?, matched?) over each short text and each of the three languages
    for row in rows:
        short = first_words(row["text"], row["language"])
        for wanted in LABELS:
            matches, _ = language.language_matches(short, wanted)
            judged[(wanted == row["language"], matches)] += 1
    return {
        "mode": mode,
        "build_s": build_s,
        "memory_mib": memory_mib,
        "pairs": [[row["language"], found] for row, found in zip(rows, detected, strict=True)],
        "times_ms": times_ms,
        "judged": [[right, matches, count] for (right, matches), count in judged.items()],
    }


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def report(results: list[dict]) -> str:
    lines = [
        "## Language check: lingua on factory texts",
        "",
        "Command: `make bench-languages` (`.venv/bin/python bench/languages.py --write`)  ",
        f"Machine: {os.cpu_count()} cores, Python {sys.version.split()[0]}.  ",
        f"Set: `tests/outputs/language_samples.jsonl`, {len(samples())} texts (20 each zh, en, es) with equipment ids, "
        "numbers and units. Candidates: the 17 languages of `edgeportal.outputs.language.CANDIDATES`. "
        "Build: the detector with its models loaded (in a fresh process). Times: "
        f"`detect_language` per text over {PASSES} passes.",
        "",
        "| mode | build (s) | memory (MiB) | accuracy | zh | en | es | mean (ms) | p95 (ms) |"
        " short texts: right language matches | wrong language refused |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    confusions = []
    for result in results:
        pairs = result["pairs"]
        per_language = {
            label: sum(found == label for wanted, found in pairs if wanted == label)
            / sum(wanted == label for wanted, _ in pairs)
            for label in LABELS
        }
        judged = {(right, matches): count for right, matches, count in result["judged"]}
        right_total = judged.get((True, True), 0) + judged.get((True, False), 0)
        wrong_total = judged.get((False, True), 0) + judged.get((False, False), 0)
        times = result["times_ms"]
        lines.append(
            f"| {result['mode']} | {result['build_s']:.2f} | {result['memory_mib']:.0f} "
            f"| {sum(w == f for w, f in pairs) / len(pairs):.3f} "
            + " ".join(f"| {per_language[label]:.2f}" for label in LABELS)
            + f" | {statistics.fmean(times):.2f} | {percentile(times, 0.95):.2f} "
            f"| {judged.get((True, True), 0)}/{right_total} | {judged.get((False, False), 0)}/{wrong_total} |"
        )
        confusion = Counter((wanted, found or "none") for wanted, found in pairs)
        found_labels = sorted({found for _, found in confusion}, key=lambda c: (c not in LABELS, c))
        confusions += [
            "",
            f"Confusion, {result['mode']} accuracy (rows: labelled, columns: detected):",
            "",
            "| | " + " | ".join(found_labels) + " |",
            "|---|" + "---:|" * len(found_labels),
            *(
                f"| {label} | " + " | ".join(str(confusion[(label, found)]) for found in found_labels) + " |"
                for label in LABELS
            ),
        ]
    lines += confusions
    lines += [
        "",
        "Short texts: the first three words of each sample (six characters in Chinese), checked with "
        "`language_matches` against zh, en and es.",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mode", choices=MODES, help=argparse.SUPPRESS)  # one mode, in a child process
    parser.add_argument("--write", action="store_true", help="also replace its section of BENCHMARKS.md")
    args = parser.parse_args()
    if args.mode:
        print(json.dumps(measure(args.mode)))
        return
    results = []
    for mode in MODES:
        child = subprocess.run(
            [sys.executable, __file__, "--mode", mode], check=True, capture_output=True, text=True, cwd=ROOT
        )
        results.append(json.loads(child.stdout.strip().splitlines()[-1]))
    text = report(results)
    if args.write:
        import harness

        harness.write_section("languages", text)
    print(text)


if __name__ == "__main__":
    main()
