"""Several candidates per job in one batch, and the best of them picked: a job whose decoding asks for n
candidates takes n rows of its batch (the first decoded as the job asks, the others sampled from seeds of its
own), and a pick function (the reranker, given by the caller) chooses its answer among them.

One batch of 8 jobs x 4 candidates costs far less than 4 batches: the model reads the weights once per step
for all rows (BENCHMARKS.md, output quality). WithCandidates wraps an engine and keeps its interface, so the
worker runs it as any engine; the pick's time is inside the batch's time, which admission plans with.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass, replace

from inference.decoding import GREEDY, Decoding
from inference.generation import BatchOutput, Generation, GenerationParams, StepCallback

log = logging.getLogger(__name__)

# The other candidates' sampling: varied enough to differ from the first, close enough to stay on topic.
CANDIDATE_TEMPERATURE = 0.8
CANDIDATE_TOP_P = 0.95

# (the job's prompt, its system prompt, its candidates, its decoding) -> the chosen index and why (JSON values)
Pick = Callable[[str, str | None, list[Generation], Decoding], tuple[int, dict]]


def candidate_decodings(decoding: Decoding) -> list[Decoding]:
    """The rows of a job: itself, then n-1 sampled ones, each seeded from the job's seed, so a batch that
    runs again draws the same candidates (a sampled job keeps its own temperature)."""
    first = replace(decoding, candidates=1)
    base = decoding.seed or 0
    sampled = first if first.sampled else replace(first, temperature=CANDIDATE_TEMPERATURE, top_p=CANDIDATE_TOP_P)
    return [first] + [replace(sampled, seed=(base + i) % 2**63) for i in range(1, max(1, decoding.candidates))]


@dataclass(frozen=True)
class Expanded:
    """A batch's rows once its jobs' candidates are laid out: the arguments for the engine, and which rows
    each job owns (its first row first)."""

    inputs: dict
    rows_of: list[list[int]]
    decodings: list[Decoding]  # each job's own

    def step_hook(self, on_step: StepCallback | None) -> StepCallback | None:
        """Each job's first row speaks for it to on_step (its token count; a job of several does not stream)."""
        if on_step is None:
            return None
        firsts = [rows[0] for rows in self.rows_of]
        return lambda step: on_step([step[row] for row in firsts])


def expand(prompts, params, system_prompts, max_new_tokens_each, decodings) -> Expanded:
    params = params or GenerationParams()
    systems = system_prompts or [None] * len(prompts)
    limits = max_new_tokens_each or [params.max_new_tokens] * len(prompts)
    decodings = decodings or [GREEDY] * len(prompts)
    rows: dict[str, list] = {"prompts": [], "system_prompts": [], "max_new_tokens_each": [], "decodings": []}
    rows_of = []
    for prompt, system, limit, decoding in zip(prompts, systems, limits, decodings, strict=True):
        owned = []
        for row_decoding in candidate_decodings(decoding):
            owned.append(len(rows["prompts"]))
            rows["prompts"].append(prompt)
            rows["system_prompts"].append(system)
            rows["max_new_tokens_each"].append(limit)
            rows["decodings"].append(row_decoding)
        rows_of.append(owned)
    return Expanded({"params": params, **rows}, rows_of, list(decodings))


def collapse(output: BatchOutput, expanded: Expanded, pick: Pick) -> BatchOutput:
    """One generation per job: a job of one keeps its own, a job of several gets the one pick chooses (the
    first, if pick fails), with why. The pick's time counts in the batch's."""
    started = time.perf_counter()
    inputs = expanded.inputs
    generations = []
    for job, rows in enumerate(expanded.rows_of):
        candidates = [output.generations[row] for row in rows]
        if len(candidates) == 1:
            generations.append(candidates[0])
            continue
        first = rows[0]
        prompt, system = inputs["prompts"][first], inputs["system_prompts"][first]
        picked = time.perf_counter()
        try:
            chosen, why = pick(prompt, system, candidates, expanded.decodings[job])
            if not 0 <= chosen < len(candidates):
                raise ValueError(f"picked candidate {chosen} of {len(candidates)}")
        except Exception as error:  # a reranker fault must not lose the answers: the first one stands
            log.exception("the reranker failed; the first candidate answers")
            made = [{"text": c.text, "new_tokens": c.new_tokens, "finish_reason": c.finish_reason} for c in candidates]
            chosen, why = 0, {"error": f"{type(error).__name__}: {str(error)[:200]}", "candidates": made}
        why = {**why, "chosen": chosen, "rerank_ms": round((time.perf_counter() - picked) * 1000, 1)}
        generations.append(replace(candidates[chosen], choice=why))
    if len(generations) == len(output.generations):
        return output  # every job asked for one: the engine's own output
    rerank_ms = (time.perf_counter() - started) * 1000
    return BatchOutput(generations, output.padded_tokens, output.inference_ms + rerank_ms)


class WithCandidates:
    """An engine whose jobs may ask for several candidates (Decoding.candidates); everything else is the
    wrapped engine's. A batch where every job asks for one runs exactly as on the engine itself."""

    def __init__(self, engine, pick: Pick):
        self.engine, self.pick = engine, pick

    def __getattr__(self, name):
        return getattr(self.engine, name)

    def generate_batch(self, prompts, params=None, *, system_prompts=None, max_new_tokens_each=None,
                       decodings=None, on_step=None) -> BatchOutput:  # fmt: skip
        expanded = expand(prompts, params, system_prompts, max_new_tokens_each, decodings)
        output = self.engine.generate_batch(**expanded.inputs, on_step=expanded.step_hook(on_step))
        return collapse(output, expanded, self.pick)

    def generate_in_steps(self, prompts, params, *, system_prompts=None, max_new_tokens_each=None, decodings=None,
                          on_step=None, chunk_tokens: int = 256,
                          pause_wanted=lambda: False) -> Generator[None, None, BatchOutput]:  # fmt: skip
        expanded = expand(prompts, params, system_prompts, max_new_tokens_each, decodings)
        output = yield from self.engine.generate_in_steps(
            **expanded.inputs, on_step=expanded.step_hook(on_step), chunk_tokens=chunk_tokens,
            pause_wanted=pause_wanted,
        )  # fmt: skip
        return collapse(output, expanded, self.pick)
