"""Copy bias: the request's ids and numbers ("P3", "AGV-B2", "120 °C") made more likely while the output lacks
them, so a small model's answer names the machine it was asked about (BENCHMARKS.md, output quality, on the
default model: echo 0.54 without, 0.78 with a flat bias of 2, 0.86 with a bias of 2 that rises).

Each missing item adds the bias to the logit of the token that would begin it, or, where the output has just
begun one, only the tokens that continue it get the bias; an item the output has carried is left alone. The bias
rises with the output's length (RISE_TOKENS, MAX_RISE). Both engines apply it with the repeat control
(runtime._RepeatControl, llama_engine._pick), before a schema mask and a draw.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable, Sequence

import torch

from inference.decoding import Decoding, Detokenizer
from inference.items import echoed
from inference.repetition import RepeatGuard, controls_repeats

# (text) -> its token ids, without special tokens; (token ids) -> their text: the engine's tokenizer
Encode = Callable[[str], list[int]]
Decode = Callable[[list[int]], str]
# An item counts as carried when the last this many characters of the output hold it, however written
# (items.echoed: "120°C" carries "120 °C", "P-3" carries "P3"); items are short, so the check stays cheap.
TAIL_CHARS = 48
# The bias grows with the answer while items are missing: by RISE_TOKENS tokens it is twice the setting, and at
# most MAX_RISE times it. A small bias at the start leaves the opening (and its language) to the model; an answer
# that has gone on without naming the machine is pushed harder (BENCHMARKS.md, output quality: echo 0.78 -> 0.86
# at the node's default with language met unchanged, where a flat bias of 3 cost Chinese answers).
RISE_TOKENS = 8
MAX_RISE = 3.0


class _Variant:
    """One way to write an item: its tokens (alone, or after a space) and the text of each proper prefix."""

    def __init__(self, tokens: tuple[int, ...], spaced: bool, decode: Decode):
        self.tokens, self.spaced = tokens, spaced
        self.prefixes = [decode(list(tokens[:k])) for k in range(1, len(tokens))]
        # A first token of white space alone (" 120" is a space, then digits) would favour every space.
        self.begins_blank = not decode([tokens[0]]).strip()


class CopyGuard:
    """One row's items, kept up token by token across the steps of its batch (pauses included): which it has
    carried, and which tokens begin or continue the others.

    An item begins only where a word may begin: after a space, a mark or the start for its own tokens, after
    anything but a space for its spaced tokens (" P3"); so "P" never becomes "P1" and "1" never "11". Once the
    output ends with a begun item (its first tokens, after such a boundary), only its continuation is favoured;
    a number is taken as begun only from its second character on ("1" may start "10" as well as "120": the bias
    must not change a number the model meant)."""

    def __init__(self, items: Sequence[str], bias: float, encode: Encode, decode: Decode):
        self.items, self.bias = list(items), bias
        self.variants: list[list[_Variant]] = []
        for item in self.items:
            variants = {}
            for spaced, text in ((False, item), (True, " " + item)):
                tokens = tuple(encode(text))
                if tokens and tokens not in variants:
                    variants[tokens] = _Variant(tokens, spaced, decode)
            self.variants.append(list(variants.values()))
        self.carried = [False] * len(self.items)
        self.text = Detokenizer(decode)
        self.taken = 0

    def _take_in(self, made: Sequence[int]) -> str:
        for token in made[self.taken :]:
            tail = self.text.push(token)[-TAIL_CHARS:]
            for index, item in enumerate(self.items):
                self.carried[index] = self.carried[index] or echoed(item, tail)
        self.taken = len(made)
        return self.text.text

    def favoured(self, made: Sequence[int]) -> set[int]:
        """The tokens that continue an item the output has begun and not carried yet, after the tokens it made;
        where it has begun none, the tokens that would begin one here."""
        text = self._take_in(made)
        last = text[-1:]
        beginnings, continuations = set(), set()
        for index, variants in enumerate(self.variants):
            if self.carried[index]:
                continue
            numeric = not any(char.isalpha() for char in self.items[index])
            for variant in variants:
                begun = self._begun(variant, made, text, numeric)
                if begun:
                    continuations.add(variant.tokens[begun])
                elif _may_begin(variant, last):
                    beginnings.add(variant.tokens[0])
        return continuations or beginnings

    @staticmethod
    def _begun(variant: _Variant, made: Sequence[int], text: str, numeric: bool) -> int:
        """How many of the variant's tokens the output ends with, after a word boundary (0: none)."""
        for k in range(min(len(variant.tokens) - 1, len(made)), 0, -1):
            if tuple(made[-k:]) != variant.tokens[:k]:
                continue
            prefix = variant.prefixes[k - 1]
            # where the prefix's text cannot be found at the end (a context-dependent decoding), assume a word
            before = text[: len(text) - len(prefix)][-1:] if text.endswith(prefix) else "a"
            at_boundary = variant.spaced or not _word_char(before)
            if at_boundary and not (numeric and len(prefix.strip()) < 2):
                return k
        return 0

    def apply(self, made: Sequence[int], scores: torch.Tensor) -> None:
        """Adjust this row's scores (one row's 1-D logits, in place) after the tokens it generated so far."""
        if favoured := self.favoured(made):
            index = torch.tensor(sorted(favoured), dtype=torch.long, device=scores.device)
            scores[index] += self.bias_after(len(made))

    def bias_after(self, made: int) -> float:
        """The bias once the output has `made` tokens (RISE_TOKENS, MAX_RISE)."""
        return self.bias * min(MAX_RISE, 1 + made / RISE_TOKENS)


def _may_begin(variant: _Variant, last: str) -> bool:
    """Whether an item may begin after the output's last character: its own tokens at the start or after a
    space, a mark or a CJK character; its spaced tokens after a letter or a mark, never after a digit (a number
    the model is writing is never split) and never where their first token is a lone space."""
    if variant.begins_blank:
        return False
    if not last:
        return True
    return not (last.isspace() or last.isdigit()) if variant.spaced else not _word_char(last)


def _word_char(char: str) -> bool:
    """A letter or digit of a script that spaces its words (a CJK character is none: an id may follow it)."""
    if not char or "\u3040" <= char <= "\u9fff":
        return False
    return unicodedata.category(char)[0] in "LN"


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


def row_guards(decodings: Sequence[Decoding], encode: Encode, decode: Decode) -> dict[int, Guards]:
    """The rows of a batch whose decoding controls repeats or favours the request's items, each with its guards
    (empty: no row does)."""
    guards = {}
    for row, decoding in enumerate(decodings):
        kept = [RepeatGuard(decoding)] if controls_repeats(decoding) else []
        if decoding.copy_bias and decoding.copy_items:
            kept.append(CopyGuard(decoding.copy_items, decoding.copy_bias, encode, decode))
        if kept:
            guards[row] = Guards(kept)
    return guards
