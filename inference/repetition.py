"""Repetition control that spares the prompt: a row's repeats are judged within the tokens it generated, never
against its prompt, so an answer may copy the ids, numbers and units it was given as often as it needs.

transformers' own repetition_penalty and no_repeat_ngram_size count the prompt too: they end loops, but punish
an answer for naming the machine the request named (BENCHMARKS.md, output quality). Both engines call
RepeatGuard on a row's scores before its schema mask and its draw (runtime._RepeatControl, llama_engine._pick).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from inference.decoding import Decoding


def controls_repeats(decoding: Decoding) -> bool:
    """Whether a row's repeats are controlled. Not a row with a JSON Schema: its schema bounds its output, and a
    ban could take the one token its schema allows next (a JSON object repeats its `", "` runs by design)."""
    return (decoding.repetition_penalty != 1.0 or decoding.no_repeat_ngram > 0) and not decoding.json_schema


class RepeatGuard:
    """One row's repeats, kept up token by token across the steps of its batch (pauses included):

    - repetition_penalty: a token the row already generated has its logit divided by the penalty when
      positive and multiplied when negative (as transformers does), so it is less likely again;
    - no_repeat_ngram n: a token that would complete an n-token sequence the row already generated is banned.
    """

    def __init__(self, decoding: Decoding):
        self.penalty = decoding.repetition_penalty
        self.n = decoding.no_repeat_ngram
        self.taken = 0  # how many of the row's generated tokens are counted below (the caller keeps them)
        self.distinct: set[int] = set()
        self.next_of: dict[tuple[int, ...], set[int]] = {}  # each (n-1)-token run -> the tokens that followed it

    def _take_in(self, made: Sequence[int]) -> None:
        for end in range(self.taken + 1, len(made) + 1):
            self.distinct.add(made[end - 1])
            if self.n > 0 and end >= self.n:
                self.next_of.setdefault(tuple(made[end - self.n : end - 1]), set()).add(made[end - 1])
        self.taken = len(made)

    def banned(self, made: Sequence[int]) -> set[int]:
        """The tokens that would repeat an n-gram of the row's output, after the tokens it made so far (the same
        list each step, grown by the new ones)."""
        self._take_in(made)
        if self.n <= 0 or len(made) < self.n - 1:
            return set()
        return self.next_of.get(tuple(made[len(made) - self.n + 1 :]) if self.n > 1 else (), set())

    def apply(self, made: Sequence[int], scores: torch.Tensor) -> None:
        """Adjust this row's scores (one row's 1-D logits, in place) after the tokens it generated so far."""
        banned = self.banned(made)
        if self.penalty != 1.0 and self.distinct:
            index = torch.tensor(sorted(self.distinct), dtype=torch.long, device=scores.device)
            kept = scores[index]
            scores[index] = torch.where(kept < 0, kept * self.penalty, kept / self.penalty)
        if banned:
            index = torch.tensor(sorted(banned), dtype=torch.long, device=scores.device)
            scores[index] = float("-inf")


def repeat_guards(decodings: Sequence[Decoding]) -> dict[int, RepeatGuard]:
    """The rows of a batch whose decoding controls repeats, each with its guard (empty: no row does)."""
    return {row: RepeatGuard(d) for row, d in enumerate(decodings) if controls_repeats(d)}
