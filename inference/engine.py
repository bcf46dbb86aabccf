"""The engine seam: what a worker needs from a model runtime, whichever library runs the model.

The worker, its warm-up and the latency lab use only this interface. The transformers engine
(inference.runtime.TransformersEngine) is the reference and the default; a faster engine goes beside it,
and passes the same conformance tests (tests/inference/test_engine.py).
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Sequence
from dataclasses import asdict, dataclass
from typing import Protocol, runtime_checkable

from inference.decoding import Decoding
from inference.devices import device_class
from inference.generation import BatchOutput, GenerationParams, StepCallback

ENGINES = ("auto", "transformers", "llama.cpp")  # EDGE_ENGINE's choices (inference.engine_choice)
LLAMA_WEIGHTS = ("auto", "float16", "float32")  # EDGE_LLAMA_WEIGHTS's choices (inference.engine_choice)


@dataclass(frozen=True)
class EngineIdentity:
    """Which model runs, and how: what a worker publishes, and what its measurements are measurements of."""

    model: str  # its name: the folder or .gguf file it came from
    revision: str  # a fingerprint of its files: two workers with the same name and revision run the same weights
    dtype: str  # float32, bfloat16, float16
    device: str  # cpu, cuda:0, ...
    engine: str = "transformers"

    @property
    def device_class(self) -> str:
        return device_class(self.device)

    def fields(self) -> dict[str, str]:
        """As a worker's registry entry holds it (strings: a Redis hash)."""
        return {name: str(value) for name, value in asdict(self).items()}


@runtime_checkable
class Engine(Protocol):
    """A model loaded once, warmed up, and run in batches. Greedy decoding: a batch's outputs are those of
    each prompt run alone, and generate_in_steps gives the outputs of generate_batch. A row whose Decoding
    samples draws from its own seeded generator; each row ends at its own limit and stop strings
    (inference.decoding.final_text), with finish_reason "length" or "stop"."""

    identity: EngineIdentity
    context_length: int | None  # the most tokens, prompt and output, it reads (None: unknown)

    def count_tokens(
        self, prompt: str, system_prompt: str | None = None, raw: bool = False, turns: Sequence[Sequence[str]] = ()
    ) -> int:
        """The prompt's tokens as the model reads it (its chat template applied unless raw, with a
        conversation's earlier turns): what lanes are chosen by, and what usage reports."""
        ...

    def decode(self, token_ids: Sequence[int]) -> str:
        """The text of generated tokens (what on_step's tokens stream as)."""
        ...

    def generate_batch(
        self,
        prompts: Sequence[str],
        params: GenerationParams | None = None,
        *,
        system_prompts: Sequence[str | None] | None = None,
        max_new_tokens_each: Sequence[int] | None = None,
        decodings: Sequence[Decoding] | None = None,
        on_step: StepCallback | None = None,
    ) -> BatchOutput:
        """Generate for a whole batch; each job's output is cut to its own token limit. on_step gets every
        decoding step's new tokens, one per row (None for a row that ended), as they are made."""
        ...

    def generate_in_steps(
        self,
        prompts: Sequence[str],
        params: GenerationParams,
        *,
        system_prompts: Sequence[str | None] | None = None,
        max_new_tokens_each: Sequence[int] | None = None,
        decodings: Sequence[Decoding] | None = None,
        on_step: StepCallback | None = None,
        chunk_tokens: int = 256,
        pause_wanted: Callable[[], bool] = lambda: False,
    ) -> Generator[None, None, BatchOutput]:
        """generate_batch as a generator: it yields after each prefill chunk, and during decoding whenever
        pause_wanted() says so, so the caller may run other batches in between (long batches stand aside
        for short ones this way). inference_ms counts only the time spent on this batch."""
        ...

    def warm_up(self) -> None:
        """Run the model once, so that the first real batch does not pay for lazy set-up."""
        ...
