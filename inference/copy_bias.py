"""Copy bias: the request's ids and numbers ("P3", "AGV-B2", "120 °C") made more likely while the output lacks
them, so a small model's answer names the machine it was asked about (BENCHMARKS.md, output quality: echo 0.54
without, 0.86 with a bias of 2 on the default model).

Each missing item adds the bias to the logit of the token that would begin it, or, where the output has just
begun one, only the tokens that continue it get the bias; an item the output has carried is left alone. Both
engines apply it with the repeat control (runtime._RepeatControl, llama_engine._pick), before a schema mask and
a draw.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from inference.decoding import Decoding
from inference.repetition import RepeatGuard, controls_repeats

# (text) -> its token ids, without special tokens: the engine's tokenizer
Encode = Callable[[str], list[int]]


class CopyGuard:
    """One row's items, each as the token sequences that may write it (alone, or after a space), kept up token by
    token across the steps of its batch: which it has carried, and which tokens begin or continue the others."""

    def __init__(self, items: Sequence[str], bias: float, encode: Encode):
        self.bias = bias
        self.variants = [[v for v in {tuple(encode(item)), tuple(encode(" " + item))} if v] for item in items]
        self.carried = [False] * len(self.variants)
        self.taken = 0

    def _take_in(self, made: Sequence[int]) -> None:
        for end in range(self.taken + 1, len(made) + 1):
            for index, variants in enumerate(self.variants):
                if not self.carried[index]:
                    self.carried[index] = any(tuple(made[max(0, end - len(v)) : end]) == v for v in variants)
        self.taken = len(made)

    def favoured(self, made: Sequence[int]) -> set[int]:
        """The tokens that continue an item the output has begun and not carried yet, after the tokens it made;
        where it has begun none, the tokens that would begin one (an item half written is finished first: its
        continuation does not compete with other items' beginnings)."""
        self._take_in(made)
        beginnings, continuations = set(), set()
        for index, variants in enumerate(self.variants):
            if self.carried[index]:
                continue
            for variant in variants:
                begun = next(
                    (k for k in range(min(len(variant) - 1, len(made)), 0, -1) if tuple(made[-k:]) == variant[:k]), 0
                )
                (continuations if begun else beginnings).add(variant[begun])
        return continuations or beginnings

    def apply(self, made: Sequence[int], scores: torch.Tensor) -> None:
        """Adjust this row's scores (one row's 1-D logits, in place) after the tokens it generated so far."""
        if favoured := self.favoured(made):
            index = torch.tensor(sorted(favoured), dtype=torch.long, device=scores.device)
            scores[index] += self.bias


class Guards:
    """A row's controls, applied in turn: its repeat control, then its copy bias (which may favour a token the
    penalty made less likely, never one the n-gram ban took away)."""

    def __init__(self, guards: list):
        self.guards = guards

    def apply(self, made: Sequence[int], scores: torch.Tensor) -> None:
        copies = [guard for guard in self.guards if isinstance(guard, CopyGuard)]
        for guard in self.guards:
            if not isinstance(guard, CopyGuard):
                guard.apply(made, scores)
        for guard in copies:
            banned = torch.isneginf(scores)
            guard.apply(made, scores)
            scores[banned] = float("-inf")


def row_guards(decodings: Sequence[Decoding], encode: Encode) -> dict[int, Guards]:
    """The rows of a batch whose decoding controls repeats or favours the request's items, each with its guards
    (empty: no row does)."""
    guards = {}
    for row, decoding in enumerate(decodings):
        kept = [RepeatGuard(decoding)] if controls_repeats(decoding) else []
        if decoding.copy_bias and decoding.copy_items:
            kept.append(CopyGuard(decoding.copy_items, decoding.copy_bias, encode))
        if kept:
            guards[row] = Guards(kept)
    return guards
