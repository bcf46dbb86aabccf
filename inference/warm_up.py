"""The worker's warm-up measurement: batch times admission plans with from the first request after a start."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from inference.batch_time import warm_up_baseline
from inference.generation import GenerationParams

if TYPE_CHECKING:
    from inference.engine import Engine

log = logging.getLogger(__name__)

SHORT_PROMPT = (
    "Camera C3 on press line P3 detected a 4 mm scratch on door panel 42. "
    "Write a short defect description for the QA inspector."
)
LOG_LINE = "Shift log: motor 3 on conveyor B overheated at 14:20, was stopped, cooled down and restarted. "


def short_prompts(count: int) -> list[str]:
    """A full batch's jobs, each with a prompt of its own (of the same length), as in real batches: rows with one
    prompt share its prefill (a job's candidates), which would measure a full batch as cheaper than it is."""
    return [SHORT_PROMPT.replace("panel 42", f"panel {1000 + row}") for row in range(count)]


def measure_baseline(
    model: Engine, *, max_batch_size: int, new_tokens: int, chunk_tokens: int, short_between: bool = False
) -> dict[str, str]:
    """Time a short batch of one job and a full one, each generating new_tokens to the end, and the prefill
    of one long-lane chunk of chunk_tokens: the baseline of both lanes (inference.batch_time). short_between
    (a worker serving both lanes, long chunks on): run_beside first, untimed."""
    params = GenerationParams(max_new_tokens=new_tokens, min_new_tokens=new_tokens)
    long_prompt = LOG_LINE
    while model.count_tokens(long_prompt) < chunk_tokens:
        long_prompt += LOG_LINE
    if short_between:
        run_beside(model, long_prompt, chunk_tokens)
    one = model.generate_batch([SHORT_PROMPT], params)
    full = model.generate_batch(short_prompts(max_batch_size), params)
    chunk = model.generate_batch([long_prompt], GenerationParams(max_new_tokens=1))
    log.info(
        "measured batch times: short %.0f ms for 1 job, %.0f ms for %d; long lane %.2f ms per prompt token",
        one.inference_ms, full.inference_ms, max_batch_size, chunk.inference_ms / max(1, chunk.padded_tokens),
    )  # fmt: skip
    return warm_up_baseline(
        (one.padded_tokens, one.inference_ms),
        (full.padded_tokens, full.inference_ms),
        (chunk.padded_tokens, chunk.inference_ms),
        new_tokens=new_tokens,
    )


def run_beside(model: Engine, long_prompt: str, chunk_tokens: int) -> int:
    """Run a long prompt as the worker runs long batches, in steps, with a short batch whenever it stands
    aside; returns how many short batches ran. An engine that gives each running batch a context of its own
    (llama.cpp) makes its second one here, not in the first short batch that comes between a long one's chunks
    (0.8 s on a 2-core CPU with the default model)."""
    steps = model.generate_in_steps([long_prompt], GenerationParams(max_new_tokens=1), chunk_tokens=chunk_tokens)
    between = 0
    try:
        while True:
            next(steps)
            model.generate_batch([SHORT_PROMPT], GenerationParams(max_new_tokens=1))
            between += 1
    except StopIteration:
        return between
    finally:
        steps.close()
