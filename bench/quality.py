"""Output quality benchmark: loops, id and number echo, language and cost of each repeat control, side by side.

Run with `make bench-quality` (`.venv/bin/python bench/quality.py`; in process: no web server, worker or Redis).
It loads the model once and runs the labelled set `bench/quality_set.jsonl` (requests from the factory workload
and the demo templates' sample values, each with the language its answer must be in and the ids and numbers it
must carry) in batches, chat template on, under each decoding setting of SETTINGS. Each batch runs every setting
in turn, so a slower minute of the machine weighs on all of them alike. Per setting it reports:

- loops: answers in which some 4 words in a row occur 3 times or more (edgeportal.outputs.quality.looping);
- echo: the share of the request's required ids and numbers the answer carries, as a mean over the rows that
  have any, and over all the items together;
- language met, per language asked for: an answer with words that the exit layer's check lets through
  (edgeportal.outputs.language.language_matches);
- empty and truncated (cut at the token limit) answers;
- cost: mean batch time, jobs/s and generated tokens/s, and their ratio to greedy.

`hf-penalty-prompt` is transformers' own repetition_penalty and no_repeat_ngram_size, which count the prompt's
tokens too: run through the model's generate() on the engine's own encoding (transformers engine only).

Then bench/semantic.py: the semantic prompt cache's precision on its labelled pairs (its own section).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from inference.decoding import GREEDY, Decoding  # noqa: E402 - after the path above

QUALITY_SET = ROOT / "bench" / "quality_set.jsonl"
ANSWERS = ROOT / ".cache" / "quality_answers.json"  # the last run's answers, judged, to read beside the table
LANGUAGES = ("zh", "de", "en", "es")
BATCH_SIZE = 8
MAX_NEW_TOKENS = 64


@dataclass(frozen=True)
class Setting:
    name: str
    decoding: Decoding = GREEDY
    # transformers' generate() options that count the prompt too (only hf-penalty-prompt has any)
    prompt_counted: dict = field(default_factory=dict)
    rising: bool = True  # False: the copy bias stays as set (as before it rose with the output's length)
    shared_prefill: bool = True  # False: each of a job's candidates prefills its prompt itself (as before)
    draws_together: bool = True  # False: the sampled rows of a step draw one by one (as before; transformers)


SETTINGS = (
    Setting("greedy"),
    Setting("hf-penalty-prompt", prompt_counted={"repetition_penalty": 1.15, "no_repeat_ngram_size": 4}),
    Setting("ngram4", Decoding(no_repeat_ngram=4)),
    Setting("ngram3", Decoding(no_repeat_ngram=3)),
    Setting("penalty1.1+ngram4", Decoding(repetition_penalty=1.1, no_repeat_ngram=4)),
    Setting("penalty1.15+ngram4", Decoding(repetition_penalty=1.15, no_repeat_ngram=4)),
    # The node's default (penalty 1.15, no repeated 4-gram) with candidates in the same batch, the best kept by
    # the CPU reranker (inference.candidates, edgeportal.outputs.reranking) in the row's language.
    Setting("2 candidates", Decoding(repetition_penalty=1.15, no_repeat_ngram=4, candidates=2)),
    Setting("4 candidates", Decoding(repetition_penalty=1.15, no_repeat_ngram=4, candidates=4)),
    Setting(
        "4 candidates, prefill each",
        Decoding(repetition_penalty=1.15, no_repeat_ngram=4, candidates=4),
        shared_prefill=False,
    ),
    Setting(
        "4 candidates, draws one by one",
        Decoding(repetition_penalty=1.15, no_repeat_ngram=4, candidates=4),
        draws_together=False,
    ),
    # The repeat control above with the copy bias (inference.copy_bias): the request's ids and numbers, as the
    # entry finds them (edgeportal.outputs.quality.required_items), favoured while the answer lacks them.
    Setting("copy bias 2 (node default)", Decoding(repetition_penalty=1.15, no_repeat_ngram=4, copy_bias=2.0)),
    Setting("copy bias 2, flat", Decoding(repetition_penalty=1.15, no_repeat_ngram=4, copy_bias=2.0), rising=False),
    Setting("copy bias 3", Decoding(repetition_penalty=1.15, no_repeat_ngram=4, copy_bias=3.0)),
    Setting(
        "copy bias 3, 4 candidates", Decoding(repetition_penalty=1.15, no_repeat_ngram=4, copy_bias=3.0, candidates=4)
    ),
    Setting(
        "copy bias 2, 4 candidates", Decoding(repetition_penalty=1.15, no_repeat_ngram=4, copy_bias=2.0, candidates=4)
    ),
)


def labelled_set(sample: int | None = None, path: Path = QUALITY_SET) -> list[dict]:
    """The labelled requests, the first `sample` of them when given."""
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return rows[:sample] if sample else rows


def generate_prompt_counted(engine, prompts, system_prompts, max_new_tokens: int, options: dict):
    """A batch through transformers' generate() with its own repeat options (they count the prompt), on the
    encoding the engine itself uses; each row's output ends at its first end-of-text token, as the engine's."""
    import torch

    from inference.decoding import final_text
    from inference.generation import BatchOutput, Generation

    encoded = engine._encode(prompts, system_prompts, [Decoding()] * len(prompts))
    started = time.perf_counter()
    with torch.inference_mode():
        sequences = engine.model.generate(
            **encoded,
            max_new_tokens=max_new_tokens,
            do_sample=False,
            pad_token_id=engine.tokenizer.pad_token_id,
            eos_token_id=sorted(engine.stop_ids),
            **options,
        )
    inference_ms = (time.perf_counter() - started) * 1000
    prompt_length = encoded.input_ids.shape[1]
    generations = []
    for ids, mask in zip(sequences, encoded.attention_mask, strict=True):
        new = ids[prompt_length:].tolist()
        made = next((at for at, token in enumerate(new) if token in engine.stop_ids), None)
        finish = "stop" if made is not None else "length"
        made = len(new) if made is None else made
        text, _ = final_text(engine.decode(new[:made]))
        generations.append(Generation(text, int(mask.sum()), made, finish_reason=finish))
    return BatchOutput(generations, padded_tokens=int(encoded.input_ids.numel()), inference_ms=inference_ms)


def run_setting(engine, rows: list[dict], setting: Setting, max_new_tokens: int):
    """One batch of rows under one setting: its BatchOutput. Candidates run as a worker runs them: in the same
    batch, through the reranker (whose time is in the batch's)."""
    from dataclasses import replace

    from inference.generation import GenerationParams

    prompts = [row["prompt"] for row in rows]
    systems = [row.get("system_prompt") for row in rows]
    if setting.prompt_counted:
        return generate_prompt_counted(engine, prompts, systems, max_new_tokens, setting.prompt_counted)
    decodings = [setting.decoding] * len(rows)
    if setting.decoding.copy_bias:
        from edgeportal.outputs.quality import required_items

        decodings = [replace(setting.decoding, copy_items=tuple(required_items(prompt))) for prompt in prompts]
    model = engine
    if setting.decoding.candidates > 1:
        engine = with_reranker(engine)
        decodings = [replace(decoding, language=row["language"]) for decoding, row in zip(decodings, rows, strict=True)]
    with as_before(model, setting):
        return engine.generate_batch(
            prompts, GenerationParams(max_new_tokens=max_new_tokens), system_prompts=systems, decodings=decodings
        )


@contextlib.contextmanager
def as_before(engine, setting: Setting):
    """The engine as it ran before a change the setting turns off, for one batch: the copy bias flat, each
    candidate prefilling its own prompt, or the sampled rows drawing one by one."""
    from inference import copy_bias, llama_engine, runtime

    rise, shared, draws = copy_bias.MAX_RISE, llama_engine.shared_prompts, runtime.draw_rows
    own = engine.__dict__.get("_shared_prefill")  # an instance's own (None: its class's)
    try:
        if not setting.rising:
            copy_bias.MAX_RISE = 1.0  # the bias never grows
        if not setting.shared_prefill:
            llama_engine.shared_prompts = lambda ids: list(range(len(ids)))  # every row its own prompt
            if hasattr(engine, "_shared_prefill"):
                engine._shared_prefill = lambda encoded, cache: cache  # generate() prefills every row
        if not setting.draws_together:
            runtime.draw_rows = draws_one_by_one
        yield
    finally:
        copy_bias.MAX_RISE, llama_engine.shared_prompts, runtime.draw_rows = rise, shared, draws
        if own is not None:
            engine._shared_prefill = own
        else:
            engine.__dict__.pop("_shared_prefill", None)


def draws_one_by_one(scores, decodings, generators) -> list[int | None]:
    """inference.rows.draw_rows as the transformers engine ran it before: a softmax and a topk for each row."""
    from inference.rows import draw

    rows = zip(scores, decodings, generators, strict=True)
    return [draw(row, decoding, generator) for row, decoding, generator in rows]


def with_reranker(engine):
    """The engine as a worker runs it for templates with candidates: the reranker (its embedding model loaded
    once, EDGE_RERANKER_MODEL or the default) picks each job's answer."""
    from edgeportal.outputs.reranking import reranker_embedder, reranker_pick
    from inference.candidates import WithCandidates

    return WithCandidates(engine, reranker_pick(reranker_embedder))


def judged(row: dict, text: str, finish_reason: str) -> dict:
    """One answer against its labels."""
    from edgeportal.outputs.language import has_words, language_matches
    from edgeportal.outputs.quality import echoed, empty_or_truncated, looping

    required = row["required"]
    return {
        "id": row["id"],
        "language": row["language"],
        "text": text,
        "looping": looping(text),
        "required": len(required),
        "echoed": sum(echoed(item, text) for item in required),
        # An answer without words (empty, or "1. 2. 3." only) is in no language, though language_matches lets it
        # through as there is nothing to judge.
        "language_met": has_words(text) and language_matches(text, row["language"])[0],
        "flaw": empty_or_truncated(text, finish_reason),
    }


def summary(answers: list[dict], batch_ms: list[float], batch_tokens: list[int]) -> dict:
    """A setting's figures from its judged answers, its batches' times and the tokens each batch generated."""
    with_items = [a for a in answers if a["required"]]
    busy_s = sum(batch_ms) / 1000
    language_met = {}
    for code in LANGUAGES:
        asked = [a for a in answers if a["language"] == code]
        if asked:
            language_met[code] = sum(a["language_met"] for a in asked) / len(asked)
    return {
        "rows": len(answers),
        "loops": sum(a["looping"] for a in answers),
        "echo_rows": statistics.fmean(a["echoed"] / a["required"] for a in with_items) if with_items else 1.0,
        "echo_items": sum(a["echoed"] for a in answers) / max(1, sum(a["required"] for a in answers)),
        "language_met": language_met,
        "language_met_all": sum(a["language_met"] for a in answers) / len(answers),
        "empty": sum(a["flaw"] == "empty" for a in answers),
        "truncated": sum(a["flaw"] == "truncated" for a in answers),
        "batch_ms": statistics.median(batch_ms),
        "jobs_per_s": len(answers) / busy_s,
        "tokens_per_s": sum(batch_tokens) / busy_s,
        "answers": answers,
        "batches_ms": batch_ms,
        "batches_tokens": batch_tokens,
    }


def measure(engine, rows: list[dict], settings=SETTINGS, *, max_new_tokens: int = MAX_NEW_TOKENS,
            batch_size: int = BATCH_SIZE, warm_up: bool = True, progress=None) -> dict:  # fmt: skip
    """Every setting on the same batches of rows, each batch under every setting in turn: {setting name: figures}
    (see summary), with its throughput against the first setting's (greedy) in "jobs_vs_first" and
    "tokens_vs_first": the median over batches of the ratio on the same batch, so that another process's burst,
    which slows one run of one batch, moves the ratio little. A setting that counts the prompt needs the
    transformers engine: others skip it. progress, when given, gets a line after each batch of each setting."""
    settings = [s for s in settings if not s.prompt_counted or hasattr(engine, "_encode")]  # the transformers engine
    answers = {s.name: [] for s in settings}
    batch_ms = {s.name: [] for s in settings}
    batch_tokens = {s.name: [] for s in settings}
    if warm_up and rows:  # the first batch of a shape pays for allocations no later batch pays for
        run_setting(engine, rows[:batch_size], settings[0], max_new_tokens)
    for start in range(0, len(rows), batch_size):
        batch = rows[start : start + batch_size]
        for setting in settings:
            output = run_setting(engine, batch, setting, max_new_tokens)
            batch_ms[setting.name].append(output.inference_ms)
            batch_tokens[setting.name].append(sum(g.new_tokens for g in output.generations))
            for row, generation in zip(batch, output.generations, strict=True):
                answers[setting.name].append(judged(row, generation.text, generation.finish_reason))
            if progress:
                progress(f"rows {start + 1}-{start + len(batch)}, {setting.name}: {output.inference_ms:.0f} ms")
    report = {name: summary(answers[name], batch_ms[name], batch_tokens[name]) for name in answers}
    first = report[settings[0].name]
    for figures in report.values():
        pairs = list(
            zip(
                figures["batches_ms"],
                figures["batches_tokens"],
                first["batches_ms"],
                first["batches_tokens"],
                strict=True,
            )
        )
        figures["jobs_vs_first"] = statistics.median(first_ms / ms for ms, _, first_ms, _ in pairs)
        figures["tokens_vs_first"] = statistics.median(
            (tokens / ms) / (first_tokens / first_ms) if first_tokens else 1.0
            for ms, tokens, first_ms, first_tokens in pairs
        )
    return report


def table(report: dict) -> str:
    lines = [
        "| decoding | loops | echo (rows) | echo (items) | language met: zh | de | en | es | all "
        "| empty | truncated | batch p50 (ms) | jobs/s | x greedy | tokens/s | x greedy |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, f in report.items():
        met = " | ".join(f"{f['language_met'][c]:.2f}" if c in f["language_met"] else "-" for c in LANGUAGES)
        lines.append(
            f"| {name} | {f['loops']}/{f['rows']} | {f['echo_rows']:.2f} | {f['echo_items']:.2f} | {met} "
            f"| {f['language_met_all']:.2f} | {f['empty']} | {f['truncated']} | {f['batch_ms']:.0f} "
            f"| {f['jobs_per_s']:.2f} | {f['jobs_vs_first']:.2f} "
            f"| {f['tokens_per_s']:.1f} | {f['tokens_vs_first']:.2f} |"
        )
    return "\n".join(lines)


def samples(report: dict, row_id=0, width: int = 90) -> list[str]:
    """One request's answer under each setting, cut to width: what the figures look like."""
    lines = []
    for name, figures in report.items():
        answer = next((a for a in figures["answers"] if a["id"] == row_id), None)
        if answer is not None:
            text = " ".join(answer["text"].split())
            lines.append(f"- {name}: `{text[:width]}{'…' if len(text) > width else ''}`")
    return lines


def section(report: dict, *, command: str, model: str, engine: str, rows: int, max_new_tokens: int) -> str:
    from harness import machine

    return "\n".join(
        [
            "## Output quality: loops, id and number echo, language, per repeat control",
            "",
            f"Command: `{command}`  ",
            f"Machine: {machine()}.  ",
            f"Model: {model}, {engine} engine. Set: `bench/quality_set.jsonl`, {rows} requests (64 short ones from "
            "the factory workload over five kinds and zh/de/en/es, 8 from the demo templates' sample values), "
            f"chat template, {max_new_tokens} new tokens, batches of {BATCH_SIZE}; every batch ran under every "
            "setting in turn.",
            "",
            table(report),
            "",
            "Loops: answers where some 4 words in a row occur 3+ times (a CJK character and a punctuation mark are "
            "words). Echo: the share of the request's required ids and numbers (labelled by hand) that the answer "
            "carries: mean over the rows that have any, and over all items. Language met: an answer with words (not "
            "only ids, numbers and marks) that `language_matches` lets through, per language asked for. "
            "Truncated: cut at the token limit. "
            "`hf-penalty-prompt`: transformers' repetition_penalty=1.15 and no_repeat_ngram_size=4, which count "
            "the prompt; the others control repeats within the generated tokens only (inference.repetition). "
            "Batch p50: the median batch time. jobs/s and tokens/s: over the whole run. x greedy: throughput "
            "against greedy's, the median of the ratios on the same batch (the machine's 2 cores are shared; "
            "a burst of another process slows one run of one batch). Every answer, judged: "
            f"`{ANSWERS.relative_to(ROOT)}` after a run.",
            "",
            "Request 0 (“Press line PLC P3 reports current fluctuation. Give inspection steps for the technician "
            "in English.”), answered under each setting:",
            "",
            *samples(report),
        ]
    )


def load(engine_name: str, model: str | None):
    """The engine to measure: transformers (the reference) or llama.cpp (on float32 weights, or float16 for
    llama-float16), on the model at `model` (None: the default)."""
    from inference.runtime import load_engine, prepare_model_folder

    if engine_name == "transformers":
        return load_engine(model, dtype="float32", device="cpu")
    from inference.llama_engine import available, load_llama_engine
    from inference.model_files import model_revision

    if why_not := available():
        raise SystemExit(f"the llama.cpp engine cannot run here: {why_not}")
    folder = prepare_model_folder(model)
    dtype = "float16" if engine_name == "llama-float16" else "float32"
    return load_llama_engine(folder, name=model or "default", revision=model_revision(folder), dtype=dtype)


def chosen(settings, only: str | None) -> list[Setting]:
    """greedy and the settings `only` names, split by |: each part a text in their names, or "=" and a whole
    name ("=4 candidates" is that setting alone, "4 candidates" every one whose name holds it)."""
    parts = [part.strip() for part in (only or "").split("|") if part.strip()]
    if not parts:
        return list(settings)

    def wanted(name: str) -> bool:
        return any(name == part[1:] if part.startswith("=") else part in name for part in parts)

    return [setting for setting in settings if setting.name == "greedy" or wanted(setting.name)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sample", type=int, help="only the first N rows of the set")
    parser.add_argument("--model", help="a local model folder or GGUF file (default: the default model)")
    parser.add_argument("--engine", choices=("transformers", "llama", "llama-float16"), default="transformers")
    parser.add_argument("--max-new-tokens", type=int, default=MAX_NEW_TOKENS)
    parser.add_argument("--no-write", action="store_true", help="print the table, leave BENCHMARKS.md alone")
    parser.add_argument("--only", help='only these settings, beside greedy: texts in their names, or "=" and a '
                        'whole name, split by | (implies --no-write)')  # fmt: skip
    args = parser.parse_args()
    settings = chosen(SETTINGS, args.only)
    args.no_write = args.no_write or bool(args.only)

    rows = labelled_set(args.sample)
    started = time.perf_counter()
    engine = load(args.engine, args.model)
    report = measure(engine, rows, settings, max_new_tokens=args.max_new_tokens,
                     progress=lambda line: print(line, flush=True))  # fmt: skip
    print(table(report))
    print(f"\n{len(rows)} requests, {len(report)} settings, {time.perf_counter() - started:.0f} s", flush=True)
    ANSWERS.parent.mkdir(exist_ok=True)
    ANSWERS.write_text(json.dumps({name: f["answers"] for name, f in report.items()}, ensure_ascii=False, indent=1))
    print(f"answers: {ANSWERS.relative_to(ROOT)}")
    if args.no_write:
        return
    from harness import write_section

    command = "make bench-quality" if sys.argv[1:] == [] else "python bench/quality.py " + " ".join(sys.argv[1:])
    model = args.model or "SmolLM2-135M-Instruct (the default, float32)"
    text = section(report, command=command, model=model, engine=args.engine, rows=len(rows),
                   max_new_tokens=args.max_new_tokens)  # fmt: skip
    write_section("quality", text)
    import semantic  # the semantic cache's precision: the same embeddings, its own labelled set

    semantic.run(write=True, command=command)


if __name__ == "__main__":
    main()
