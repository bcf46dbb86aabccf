"""The rows of a batch as they decode, whichever engine runs them: when each ends (its end-of-text token,
its own token limit, a stop string), how many tokens it made, why it ended, and each sampled row's draw."""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence

import torch

from inference.decoding import Decoding, Detokenizer, final_text
from inference.generation import StepCallback


class Rows:
    def __init__(
        self,
        decodings: Sequence[Decoding],
        limits: Sequence[int],
        stop_ids: set[int],
        decode: Callable[[list[int]], str],
        on_step: StepCallback | None,
    ):
        self.decodings, self.limits, self.stop_ids, self.on_step = decodings, limits, stop_ids, on_step
        self.done = [False] * len(decodings)
        self.made = [0] * len(decodings)  # tokens each row made, its end-of-text token not counted
        self.finish = ["length"] * len(decodings)  # "stop" once a row ends by its end-of-text or a stop string
        # The text of the rows with stop strings, kept up step by step (the others are never decoded here).
        self.texts = {row: Detokenizer(decode) for row, d in enumerate(decodings) if d.stop}

    def step(self, newest: Sequence[int]) -> list[bool]:
        """Each row's newest token (ignored for a row that had ended); returns which rows have ended now.
        Hands the step's tokens to on_step (None for a row that has ended)."""
        step: list[int | None] = []
        for row, token in enumerate(newest):
            if self.done[row] or token in self.stop_ids:
                if not self.done[row]:
                    self.done[row], self.finish[row] = True, "stop"
                step.append(None)
                continue
            step.append(token)
            self.made[row] += 1
            if row in self.texts and final_text(self.texts[row].push(token), self.decodings[row].stop)[1]:
                self.done[row], self.finish[row] = True, "stop"
            elif self.made[row] >= self.limits[row]:
                self.done[row] = True
        if self.on_step is not None:
            self.on_step(step)
        return self.done


def row_generator(decoding: Decoding, device: torch.device | str = "cpu") -> torch.Generator:
    """A sampled row's own generator, from its seed (a fresh one without)."""
    seed = decoding.seed if decoding.seed is not None else random.SystemRandom().randrange(2**63)
    return torch.Generator(device=device).manual_seed(seed)


# The most likely tokens a top-p draw looks at first: a nucleus almost always lies within them, and finding them
# (topk) costs a fraction of sorting the whole vocabulary for every sampled row at every step (BENCHMARKS.md,
# output quality: the sort and torch.multinomial's noise over the vocabulary were 45 % of a batch of 8 jobs x 4
# candidates).
NUCLEUS_CANDIDATES = 256
# Where they hold less than top_p (a flat distribution: a fifth of the draws of sampled candidates), this many
# next (topk of 4096 takes about a twentieth of a full sort's time); the whole vocabulary sorted only after them.
# Each gives the nucleus a sort of the whole vocabulary gives, up to ties: tokens of equal probability at its edge
# may be taken in another order.
WIDER_CANDIDATES = 4096
_MASK64 = (1 << 64) - 1


def _signed(value: int) -> int:
    return value - (1 << 64) if value >= 1 << 63 else value


# splitmix64's constants, as the signed 64-bit integers torch computes with (its products wrap around).
_GOLDEN, _MIX1, _MIX2 = (_signed(c) for c in (0x9E3779B97F4A7C15, 0xBF58476D1CE4E5B9, 0x94D049BB133111EB))


def _shifted(z: torch.Tensor, bits: int) -> torch.Tensor:
    """A logical right shift of 64-bit integers (torch's >> keeps the sign)."""
    return (z >> bits) & ((1 << (64 - bits)) - 1)


def token_uniforms(key: int | torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """A uniform number in (0, 1) for each token id, from the step's key (splitmix64 of key and id): a token's
    number depends on nothing but the key and its id, so which other tokens are looked at changes nothing. Several
    rows at once: keys as a column (one per row) beside their rows of tokens."""
    key = _signed(key & _MASK64) if isinstance(key, int) else key
    z = tokens.to(torch.int64) * _GOLDEN + key
    z = (z ^ _shifted(z, 30)) * _MIX1
    z = (z ^ _shifted(z, 27)) * _MIX2
    z = z ^ _shifted(z, 31)
    return (_shifted(z, 12).to(torch.float64) + 0.5) / float(1 << 52)  # exact, and never 0 or 1


def draw(scores: torch.Tensor, decoding: Decoding, generator: torch.Generator) -> int | None:
    """A sampled row's next token from its scores (temperature, then top-p), or None where the logits are
    too far apart for its temperature (its limit is greedy: the caller takes the most likely).

    Top-p keeps the most likely tokens until their mass reaches top_p (the first always stays). The draw is an
    exponential race, as torch.multinomial runs it: the kept token with the highest probability / noise wins, where
    each token's noise is -log of its own uniform number (token_uniforms, keyed by one number from the row's
    generator per step). Two engines whose scores differ in their last bits, and so keep a slightly different
    nucleus, still draw alike unless the winner itself is at its edge."""
    return draw_rows(scores[None], [decoding], [generator])[0]


def draw_rows(
    scores: torch.Tensor, decodings: Sequence[Decoding], generators: Sequence[torch.Generator]
) -> list[int | None]:
    """draw() for the rows of scores (one per row of a batch), each with its own decoding and generator: one
    softmax and one topk for all of them instead of one per row, which cost a sampled row about a millisecond a
    step on a CPU (a batch of 8 jobs x 4 candidates draws 24 rows at every step)."""
    temperatures = torch.tensor([d.temperature for d in decodings], dtype=torch.float64, device=scores.device)
    probs = torch.softmax(scores.double() / temperatures[:, None], dim=-1)
    drawn: list[int | None] = [None] * len(decodings)
    # A NaN anywhere in a row makes its sum NaN: one sum per row, at a 40th of isfinite().all()'s cost.
    live = [row for row, total in enumerate(probs.sum(-1).tolist()) if math.isfinite(total)]
    keys = {
        row: int(torch.randint(0, 2**62, (), generator=generators[row], device=generators[row].device)) for row in live
    }
    vocabulary = probs.shape[-1]
    whole = [row for row in live if decodings[row].top_p >= 1.0]
    if whole:
        tokens = torch.arange(vocabulary, device=probs.device).expand(len(whole), vocabulary)
        _race(probs[whole], tokens, whole, None, keys, drawn)
    pending = [row for row in live if decodings[row].top_p < 1.0]
    for count in (NUCLEUS_CANDIDATES, WIDER_CANDIDATES, vocabulary):
        if not pending:
            break
        count = min(count, vocabulary)
        if count < vocabulary:
            kept, tokens = torch.topk(probs[pending], count)
        else:  # a flat distribution: its nucleus is wider than the candidates
            kept, tokens = torch.sort(probs[pending], descending=True)
        top_p = [decodings[row].top_p for row in pending]
        holds = [mass >= p or count >= vocabulary for mass, p in zip(kept.sum(-1).tolist(), top_p, strict=True)]
        found = [index for index, ok in enumerate(holds) if ok]
        if found:
            rows = [pending[index] for index in found]
            limits = torch.tensor([top_p[index] for index in found], dtype=kept.dtype, device=kept.device)
            _race(kept[found], tokens[found], rows, limits, keys, drawn)
        pending = [row for row, ok in zip(pending, holds, strict=True) if not ok]
    return drawn


def _race(kept, tokens, rows: list[int], top_p, keys: dict[int, int], drawn: list) -> None:
    """The exponential race of draw() on each of these rows: kept holds their probabilities, most likely first
    where top_p (one limit per row) cuts a nucleus."""
    if top_p is not None:
        inside = kept.cumsum(-1) - kept <= top_p[:, None]
    key_column = torch.tensor([keys[row] for row in rows], dtype=torch.int64)[:, None]
    noise = -torch.log(token_uniforms(key_column, tokens.cpu()).to(kept.device))
    race = kept / noise
    if top_p is not None:
        race = race.masked_fill(~inside, -1.0)
    winners = tokens.gather(-1, race.argmax(-1, keepdim=True)).squeeze(-1).tolist()
    for row, token in zip(rows, winners, strict=True):
        drawn[row] = int(token)
