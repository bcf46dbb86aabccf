"""The rows of a batch as they decode, whichever engine runs them: when each ends (its end-of-text token,
its own token limit, a stop string), how many tokens it made, why it ended, and each sampled row's draw."""

from __future__ import annotations

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


def draw(scores: torch.Tensor, decoding: Decoding, generator: torch.Generator) -> int | None:
    """A sampled row's next token from its scores (temperature, then top-p), or None where the logits are
    too far apart for its temperature (its limit is greedy: the caller takes the most likely)."""
    probs = torch.softmax(scores.double() / decoding.temperature, dim=-1)
    if not torch.isfinite(probs).all():
        return None
    if decoding.top_p < 1.0:
        ordered, order = torch.sort(probs, descending=True)
        # Keep the most likely tokens until their mass reaches top_p (the first always stays).
        outside = ordered.cumsum(-1) - ordered > decoding.top_p
        probs = probs.scatter(0, order, ordered.masked_fill(outside, 0.0))
    return int(torch.multinomial(probs, 1, generator=generator))
