"""The semantic prompt cache in the batch: a job whose request is close enough to one answered before takes that
answer, and only the others reach the model.

It runs in the worker because the embedding model lives there (the web never loads torch): a hit saves the model's
time, not the queue's. Which requests match, and where the answers are kept, is the caller's (lookup and store:
edgeportal.prompts.semantic_cache); this wrapper only splits a batch into hits and misses and joins it again.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Generator
from dataclasses import replace
from typing import Any

from inference.decoding import Decoding
from inference.generation import BatchOutput, Generation, StepCallback

log = logging.getLogger(__name__)

# (the decodings of the rows that ask) -> per row: the cached answer or None, and what to store a new one under
Lookup = Callable[[list[Decoding]], list[tuple[Generation | None, Any]]]
# (what lookup gave for a missed row, the answer the model made for it)
Store = Callable[[Any, Generation], None]


class Split:
    """One batch, split: the rows the cache answered and the rows the model must run."""

    def __init__(self, decodings: list[Decoding], lookup: Lookup):
        started = time.perf_counter()
        self.hits: dict[int, Generation] = {}
        self.keys: dict[int, Any] = {}
        asking = [row for row, decoding in enumerate(decodings) if decoding.semantic_threshold > 0]
        if asking:
            try:
                found = lookup([decodings[row] for row in asking])
            except Exception:  # a cache fault must not fail the jobs: the model answers them
                log.exception("the semantic cache failed; the model answers its rows")
                found = [(None, None)] * len(asking)
            for row, (hit, key) in zip(asking, found, strict=True):
                if hit is not None:
                    self.hits[row] = hit
                elif key is not None:
                    self.keys[row] = key
        self.misses = [row for row in range(len(decodings)) if row not in self.hits]
        self.lookup_ms = (time.perf_counter() - started) * 1000

    def inputs(self, prompts, params, system_prompts, max_new_tokens_each, decodings) -> dict:
        """The engine's arguments for the missed rows only."""

        def pick(values):
            return [values[row] for row in self.misses] if values is not None else None

        return {
            "prompts": pick(prompts), "params": params, "system_prompts": pick(system_prompts),
            "max_new_tokens_each": pick(max_new_tokens_each), "decodings": pick(decodings),
        }  # fmt: skip

    def step_hook(self, on_step: StepCallback | None, rows: int) -> StepCallback | None:
        """The missed rows' steps, reported for the whole batch: a row the cache answered has ended (None)."""
        if on_step is None:
            return None

        def hook(step: list[int | None]) -> None:
            full: list[int | None] = [None] * rows
            for row, token in zip(self.misses, step, strict=True):
                full[row] = token
            on_step(full)

        return hook

    def join(self, output: BatchOutput | None, store: Store, prompt_tokens: Callable[[int], int]) -> BatchOutput:
        """Every row's answer in the batch's order, a hit with its own prompt's token count (prompt_tokens(row));
        the model's new answers are kept for later requests."""
        made = dict(zip(self.misses, output.generations, strict=True)) if output is not None else {}
        hits = {row: replace(hit, prompt_tokens=prompt_tokens(row)) for row, hit in self.hits.items()}
        for row, key in self.keys.items():
            try:
                store(key, made[row])
            except Exception:  # an answer not kept costs a later request the model's time, nothing more
                log.exception("the semantic cache could not keep an answer")
        generations = [hits[row] if row in hits else made[row] for row in range(len(hits) + len(made))]
        padded = output.padded_tokens if output is not None else 0
        inference_ms = (output.inference_ms if output is not None else 0.0) + self.lookup_ms
        return BatchOutput(generations, padded, inference_ms)


class WithSemanticCache:
    """An engine whose jobs may be answered from the semantic cache (Decoding.semantic_threshold); everything else
    is the wrapped engine's. A batch where no job asks runs exactly as on the engine itself."""

    def __init__(self, engine, lookup: Lookup, store: Store):
        self.engine, self.lookup, self.store = engine, lookup, store

    def __getattr__(self, name):
        return getattr(self.engine, name)

    def generate_batch(self, prompts, params=None, *, system_prompts=None, max_new_tokens_each=None,
                       decodings=None, on_step=None) -> BatchOutput:  # fmt: skip
        split = Split(decodings or [Decoding()] * len(prompts), self.lookup)
        if not split.hits and not split.keys:
            return self.engine.generate_batch(prompts, params, system_prompts=system_prompts,
                                              max_new_tokens_each=max_new_tokens_each, decodings=decodings,
                                              on_step=on_step)  # fmt: skip
        output = None
        if split.misses:
            inputs = split.inputs(prompts, params, system_prompts, max_new_tokens_each, decodings)
            output = self.engine.generate_batch(**inputs, on_step=split.step_hook(on_step, len(prompts)))
        return split.join(output, self.store, self._counter(prompts, system_prompts, decodings))

    def generate_in_steps(self, prompts, params, *, system_prompts=None, max_new_tokens_each=None, decodings=None,
                          on_step=None, chunk_tokens: int = 256,
                          pause_wanted=lambda: False) -> Generator[None, None, BatchOutput]:  # fmt: skip
        split = Split(decodings or [Decoding()] * len(prompts), self.lookup)
        output = None
        if split.misses:
            inputs = split.inputs(prompts, params, system_prompts, max_new_tokens_each, decodings)
            output = yield from self.engine.generate_in_steps(
                **inputs, on_step=split.step_hook(on_step, len(prompts)), chunk_tokens=chunk_tokens,
                pause_wanted=pause_wanted,
            )  # fmt: skip
        return split.join(output, self.store, self._counter(prompts, system_prompts, decodings))

    def _counter(self, prompts, system_prompts, decodings) -> Callable[[int], int]:
        def count(row: int) -> int:
            system = system_prompts[row] if system_prompts else None
            return self.engine.count_tokens(prompts[row], system, decodings[row].raw, decodings[row].turns)

        return count
