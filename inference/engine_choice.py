"""Which engine serves a model (EDGE_ENGINE), in which weights (EDGE_LLAMA_WEIGHTS): the fastest that keeps the
reference's outputs, checked on the machine it runs on, and said in the log with why.

`auto` (the default) runs the llama.cpp engine (inference.llama_engine: 2 to 3 times faster on a CPU, see
BENCHMARKS.md) when it is built, the model runs on the CPU in float32, and its greedy outputs on the check
prompts are those of the transformers engine, the reference; otherwise transformers. It tries llama.cpp's
float16 weights first (a step reads half the memory: faster where measured, most of all one request at a time;
not timed at start, as a timing would differ from worker to worker), then float32 (the reference's own
weights). A pool's workers must run the same weights (inference.pools.engine_conflict): pin
EDGE_LLAMA_WEIGHTS where they could choose differently. `transformers` and `llama.cpp` ask for one (llama.cpp
without the check, so in float32 unless EDGE_LLAMA_WEIGHTS says float16; one that cannot run stops the worker
with why). Jobs whose output is held to a JSON Schema need no routing: both engines constrain them with the
same masks (inference.json_output).
"""

from __future__ import annotations

import logging
from pathlib import Path

from inference.engine import ENGINES, LLAMA_WEIGHTS, Engine
from inference.generation import GenerationParams
from inference.model_files import DEFAULT_CACHE_DIR, ModelConfigError, model_revision
from inference.pools import model_name_of
from inference.runtime import load_engine, prepare_model_folder

log = logging.getLogger(__name__)

# Greedy outputs compared before the faster engine is trusted: requests of the factory workload's kinds.
CHECK_PROMPTS = (
    "Camera C3 detected a scratch on plate P3. Describe the defect for the quality ticket.",
    "Translate this work order into English: 更换三号线传送带的磨损皮带。",
    "Write a notice for the line screen: line A restarts in 10 minutes.",
)
CHECK_TOKENS = 16


def load_chosen_engine(
    spec: str | None, requested: str = "auto", *, dtype: str = "", device: str = "auto", name: str | None = None,
    cache_root: Path = DEFAULT_CACHE_DIR, llama_weights: str = "auto",
) -> Engine:  # fmt: skip
    requested = (requested or "auto").strip().lower()
    if requested not in ENGINES:
        raise ModelConfigError(f"EDGE_ENGINE must be one of {', '.join(ENGINES)}, got {requested!r}")
    llama_weights = (llama_weights or "auto").strip().lower()
    if llama_weights not in LLAMA_WEIGHTS:
        raise ModelConfigError(f"EDGE_LLAMA_WEIGHTS must be one of {', '.join(LLAMA_WEIGHTS)}, got {llama_weights!r}")
    if requested == "llama.cpp":
        if why_not := _llama_refusal(device, dtype):
            raise ModelConfigError(f"EDGE_ENGINE=llama.cpp cannot run: {why_not}")
        weights = "float32" if llama_weights == "auto" else llama_weights  # nothing to check float16 against
        engine = _load_llama(spec, name, cache_root, weights)
        log.info("engine: llama.cpp, %s weights (EDGE_ENGINE=llama.cpp)", weights)
        return engine
    reference = load_engine(spec, dtype=dtype, device=device, name=name, cache_root=cache_root)
    if requested == "transformers":
        log.info("engine: transformers (EDGE_ENGINE=transformers)")
        return reference
    if why_not := _llama_refusal(reference.identity.device, reference.identity.dtype):
        log.info("engine: transformers (llama.cpp not used: %s)", why_not)
        return reference
    tried = []
    for weights in ("float16", "float32") if llama_weights == "auto" else (llama_weights,):
        fast = None
        try:
            fast = _load_llama(spec, reference.identity.model, cache_root, weights)
            differing = outputs_differing(reference, fast)
        except Exception as error:  # weights llama.cpp cannot convert, load or run: the next, else the reference
            if fast is not None:
                fast.close()
            tried.append(f"llama.cpp could not run this model on {weights} weights: {error}")
            continue
        if not differing:
            log.info("engine: llama.cpp, %s weights (its greedy outputs match the transformers reference on %d "
                     "check prompts%s; 2-3x faster on a CPU: BENCHMARKS.md)", weights, len(CHECK_PROMPTS),
                     "".join(f"; {t}" for t in tried))  # fmt: skip
            return fast
        fast.close()
        tried.append(f"{weights} weights differ from the reference's greedy outputs on {differing} of "
                     f"{len(CHECK_PROMPTS)} check prompts")  # fmt: skip
    log.warning("engine: transformers (%s)", "; ".join(tried))
    return reference


def outputs_differing(reference: Engine, candidate: Engine) -> int:
    """On how many check prompts the two engines' greedy outputs (text and token count) differ."""
    params = GenerationParams(max_new_tokens=CHECK_TOKENS)
    ours = candidate.generate_batch(list(CHECK_PROMPTS), params).generations
    theirs = reference.generate_batch(list(CHECK_PROMPTS), params).generations
    return sum(a != b for a, b in zip(ours, theirs, strict=True))


def _llama_refusal(device: str, dtype: str) -> str | None:
    from inference.llama_engine import available

    if device not in ("", "auto", "cpu"):
        return f"the model runs on {device}; llama.cpp is built for the CPU"
    if dtype not in ("", "float32"):
        return f"EDGE_DTYPE={dtype}; llama.cpp runs the float32 weights"
    return available()


def _load_llama(spec: str | None, name: str | None, cache_root: Path, weights: str) -> Engine:
    from inference.llama_engine import load_llama_engine

    folder = prepare_model_folder(spec, cache_root)
    return load_llama_engine(folder, name=name or model_name_of(spec), revision=model_revision(folder),
                             cache_root=cache_root, dtype=weights)  # fmt: skip
