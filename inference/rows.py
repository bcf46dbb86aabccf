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


def token_uniforms(key: int, tokens: torch.Tensor) -> torch.Tensor:
    """A uniform number in (0, 1) for each token id, from the step's key (splitmix64 of key and id): a token's
    number depends on nothing but the key and its id, so which other tokens are looked at changes nothing."""
    z = tokens.to(torch.int64) * _GOLDEN + _signed(key & _MASK64)
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
    probs = torch.softmax(scores.double() / decoding.temperature, dim=-1)
    if not math.isfinite(float(probs.sum())):  # a NaN anywhere (what isfinite().all() finds, at a 40th of its cost)
        return None
    key = int(torch.randint(0, 2**62, (), generator=generator, device=generator.device))
    if decoding.top_p >= 1.0:
        tokens, kept = torch.arange(probs.numel(), device=probs.device), probs
    else:
        for count in (NUCLEUS_CANDIDATES, WIDER_CANDIDATES):
            kept, tokens = torch.topk(probs, min(count, probs.numel()))
            if kept.sum() >= decoding.top_p or count >= probs.numel():
                break
        else:  # a flat distribution: its nucleus is wider than the candidates
            kept, tokens = torch.sort(probs, descending=True)
        inside = kept.cumsum(-1) - kept <= decoding.top_p
        kept, tokens = kept[inside], tokens[inside]
    noise = -torch.log(token_uniforms(key, tokens.cpu()).to(kept.device))
    return int(tokens[int(torch.argmax(kept / noise))])
