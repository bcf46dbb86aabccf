"""What a generation takes and returns; kept apart from runtime.py so importing it never loads torch."""

from collections.abc import Callable
from dataclasses import dataclass

# Called after each decoding step with every row's new token (None for a row that has ended): what streams.
StepCallback = Callable[[list[int | None]], None]


@dataclass(frozen=True)
class GenerationParams:
    max_new_tokens: int = 32
    min_new_tokens: int = 0  # the end-of-text token is held back until then (the warm-up times full outputs)


@dataclass(frozen=True)
class Generation:
    text: str
    prompt_tokens: int
    new_tokens: int
    finish_reason: str = "stop"  # "stop": it ended (end-of-text or a stop string); "length": its token limit
    # Why this answer, for a job of several candidates (inference.candidates): the chosen one, each one's
    # scores and the reranker's time. None for a job of one.
    choice: dict | None = None
    # Taken from the semantic prompt cache (inference.semantic_cache): the similarity and the request it matched.
    cached: dict | None = None


@dataclass(frozen=True)
class BatchOutput:
    generations: list[Generation]
    padded_tokens: int  # batch size x padded prompt length: what the model really processed
    inference_ms: float
