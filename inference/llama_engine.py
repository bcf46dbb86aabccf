"""The llama.cpp engine: the same weights as the reference engine, run by llama.cpp (llama-cpp-python's
low-level API) about 2 to 3 times faster on a CPU (BENCHMARKS.md, engines).

It runs a GGUF that llama.cpp's own converter writes once from the prepared model folder (for the
default model: the folder the transformers engine loads, dequantised from the shipped GGUF): in float32,
the reference's own weights, whose greedy outputs agree with it, or in float16, which halves the memory a
token's step reads (faster, most of all one request at a time) and keeps nearly all greedy outputs
(inference.engine_choice checks it; BENCHMARKS.md, engines). The shipped 4-bit file itself is faster still,
but changes most outputs. Prompts are tokenised by the folder's tokenizer, as the reference
engine does (inference.chat_tokens). A batch is one llama_batch of several sequences, as llama.cpp's
server batches them; prefill runs in chunks and decoding a step at a time, so a batch can pause between
steps (long batches standing aside for short ones) and hand each step's tokens to streaming.

Capabilities (the worker's needs): batching several jobs per step, chunked prefill and pausing, per-step
tokens, exact token counts, per-row sampling and stop strings, and JSON outputs held to their schema. CPU only:
a GPU pool runs transformers.

A row with a JSON Schema (Decoding.json_schema) is constrained here as in the reference engine, by the same
lm-format-enforcer masks (inference.json_output) on the logits this engine picks from: both read tokens with
the model folder's tokenizer, so a schema allows the same tokens on either, and such jobs need no other engine.
(llama.cpp's own grammars, LlamaGrammar.from_json_schema, would constrain inside its sampler chain, which this
engine does not use, and cover JSON Schema differently from the reference.)
"""

from __future__ import annotations

import ctypes
import logging
import os
import subprocess
import sys
import time
from collections.abc import Callable, Generator, Sequence
from pathlib import Path

import numpy as np
import torch

from inference.chat_tokens import ChatTokens
from inference.copy_bias import row_guards
from inference.decoding import GREEDY, Decoding, final_text
from inference.engine import EngineIdentity
from inference.generation import BatchOutput, Generation, GenerationParams, StepCallback
from inference.json_output import JsonRows, json_rows
from inference.model_files import DEFAULT_CACHE_DIR, ModelConfigError
from inference.rows import Rows, draw_rows, row_generator

log = logging.getLogger(__name__)

MAX_SEQUENCES = 256  # sequences in one batch: the most max_batch_size allows (and llama.cpp's own limit)
DEFAULT_CONTEXT = 16_384  # tokens of all the sequences of a batch together (EDGE_LLAMA_CONTEXT)
BATCH_TOKENS = 2048  # the most tokens one llama_decode call takes


def available() -> str | None:
    """Why the llama.cpp engine cannot run here (None: it can)."""
    try:
        import llama_cpp  # noqa: F401
    except Exception as error:  # not built (no compiler), or a library that does not load
        return f"llama-cpp-python is not installed ({type(error).__name__}: {error})"
    if converter() is None:
        return "llama.cpp's converter is not installed (run scripts/build-llama-cpp.sh)"
    return None


def converter() -> Path | None:
    """llama.cpp's converter, which scripts/build-llama-cpp.sh copies into the virtual environment."""
    script = Path(sys.prefix) / "share" / "edgeportal-llama" / "convert_hf_to_gguf.py"
    return script if script.is_file() else None


# The weights' types this engine runs (EDGE_LLAMA_WEIGHTS), as llama.cpp's converter names them.
WEIGHT_TYPES = {"float32": "f32", "float16": "f16"}


def gguf_of(folder: Path, revision: str, cache_root: Path = DEFAULT_CACHE_DIR, dtype: str = "float32") -> Path:
    """The GGUF of a prepared model folder in float32 or float16, written once by llama.cpp's converter
    (atomically)."""
    outtype = WEIGHT_TYPES[dtype]
    target = cache_root / f"{folder.name}-{revision}-{outtype}.gguf"
    if target.is_file():
        return target
    script = converter()
    if script is None:
        raise ModelConfigError("llama.cpp's converter is missing: run scripts/build-llama-cpp.sh")
    target.parent.mkdir(parents=True, exist_ok=True)
    # A file of this process's own: two workers that convert at once never write into one file.
    partial = target.with_name(f"{target.name}.{os.getpid()}.partial")
    env = {**os.environ, "PYTHONPATH": str(script.parent / "gguf-py")}
    command = [sys.executable, str(script), str(folder), "--outtype", outtype, "--outfile", str(partial)]
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        partial.unlink(missing_ok=True)
        raise ModelConfigError(f"llama.cpp could not convert {folder}: {done.stderr.strip()[-500:]}")
    os.replace(partial, target)
    return target


class LlamaCppEngine(ChatTokens):
    def __init__(self, gguf: Path, tokenizer, *, identity: EngineIdentity, generation_eos=None,
                 context: int = DEFAULT_CONTEXT, threads: int | None = None):  # fmt: skip
        import llama_cpp

        self.lib = llama_cpp
        self.identity = identity
        self._tokens_ready(tokenizer, generation_eos)
        llama_cpp.llama_backend_init()
        llama_cpp.llama_log_set(_quiet_log, ctypes.c_void_p(0))  # its load log is pages long: ours says what matters
        self.model = llama_cpp.llama_model_load_from_file(str(gguf).encode(), llama_cpp.llama_model_default_params())
        if not self.model:
            raise ModelConfigError(f"llama.cpp could not load {gguf}")
        self.vocab_size = llama_cpp.llama_vocab_n_tokens(llama_cpp.llama_model_get_vocab(self.model))
        self.context_length = llama_cpp.llama_model_n_ctx_train(self.model)
        # As many threads as torch's (OMP_NUM_THREADS): workers sharing a node split its cores that way (README, a
        # worker per lane). With a thread per core in each, two such workers' spinning threads fought over every
        # core (BENCHMARKS.md, reliability).
        self.capacity, self.threads = context, threads or torch.get_num_threads()
        # A context holds one batch's sequences (their KV cache and logits). A short batch runs while a long one
        # pauses: each takes an idle context, the second made when first needed, so neither sees the other's.
        self._idle: list = []
        self._contexts: list = []
        self._idle.append(self._new_context())

    def _new_context(self):
        params = self.lib.llama_context_default_params()
        params.n_ctx, params.n_batch, params.n_ubatch = self.capacity, BATCH_TOKENS, 512
        params.n_seq_max, params.kv_unified = MAX_SEQUENCES, True  # one cache that sequences share as they need
        params.n_threads = params.n_threads_batch = self.threads
        context = self.lib.llama_init_from_model(self.model, params)
        if not context:
            raise ModelConfigError(f"llama.cpp could not make a context of {self.capacity} tokens")
        self._contexts.append(context)
        return context

    def close(self) -> None:
        """Free the contexts and the model (an engine that was loaded and then not chosen)."""
        for context in self._contexts:
            self.lib.llama_free(context)
        self._contexts, self._idle = [], []
        if self.model:
            self.lib.llama_model_free(self.model)
            self.model = None

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
        """The whole batch at once: generate_in_steps without pauses, its prefill in one piece."""
        steps = self.generate_in_steps(
            prompts, params or GenerationParams(), system_prompts=system_prompts,
            max_new_tokens_each=max_new_tokens_each, decodings=decodings, on_step=on_step, chunk_tokens=0,
        )  # fmt: skip
        while True:
            try:
                next(steps)
            except StopIteration as done:
                return done.value

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
        """Prefill in chunks of chunk_tokens per sequence (0: at once), yielding after each, then decode a step
        at a time, yielding whenever pause_wanted() says so. inference_ms counts only this batch's time."""
        if not prompts:
            return BatchOutput([], 0, 0.0)
        decodings = decodings or [GREEDY] * len(prompts)
        systems = system_prompts or [None] * len(prompts)
        ids = [self.token_ids(p, s, d.raw, d.turns) for p, s, d in zip(prompts, systems, decodings, strict=True)]
        limits = list(max_new_tokens_each or [params.max_new_tokens] * len(prompts))
        self._check_room(ids, limits)
        rows = Rows(decodings, limits, self.stop_ids, self.decode, on_step)
        generators = {row: row_generator(d) for row, d in enumerate(decodings) if d.sampled}
        schemas = json_rows(decodings, self.tokenizer, self.stop_ids)  # None: no row has a schema
        guards = row_guards(decodings, self._item_tokens, self.decode)
        made: list[list[int]] = [[] for _ in prompts]
        context = self._idle.pop() if self._idle else self._new_context()
        batch = self.lib.llama_batch_init(max(BATCH_TOKENS, len(prompts)), 0, 1)
        busy_s = 0.0
        try:
            memory = self.lib.llama_get_memory(context)
            self.lib.llama_memory_clear(memory, True)
            # Every prompt token but the last, in chunks, once per distinct prompt (a job's candidates share
            # theirs: the copies then share its cache cells); then each prompt's last token together, whose
            # logits (all read from that one call) choose the first new tokens.
            source = shared_prompts(ids)
            longest = max(len(row) for row in ids) - 1
            chunk = chunk_tokens or max(longest, 1)
            for start in range(0, longest, chunk):
                started = time.perf_counter()
                pieces = [(row, pos, ids[row][pos], False) for row in range(len(ids)) if source[row] == row
                          for pos in range(start, min(start + chunk, len(ids[row]) - 1))]  # fmt: skip
                self._decode(context, batch, pieces)
                busy_s += time.perf_counter() - started
                yield
            started = time.perf_counter()
            for row, first in enumerate(source):
                if first != row:
                    self.lib.llama_memory_seq_cp(memory, first, row, -1, -1)
            last = self._decode(
                context, batch, [(row, len(ids[row]) - 1, ids[row][-1], True) for row in range(len(ids))]
            )
            busy_s += time.perf_counter() - started
            while True:
                started = time.perf_counter()
                newest = self._pick(context, last, len(ids), decodings, generators, schemas, guards, made)
                before = list(rows.made)
                done = rows.step(newest)
                for row, count in enumerate(before):
                    if rows.made[row] > count:
                        made[row].append(newest[row])
                going = [row for row in range(len(ids)) if not done[row]]
                if going:
                    pieces = [(row, len(ids[row]) + rows.made[row] - 1, newest[row], True) for row in going]
                    last = self._decode(context, batch, pieces)
                busy_s += time.perf_counter() - started
                if not going:
                    break
                if pause_wanted():
                    yield
        finally:
            self.lib.llama_batch_free(batch)
            self._idle.append(context)
        generations = []
        for row in range(len(ids)):
            text, _ = final_text(self.decode(made[row]), decodings[row].stop)
            generations.append(Generation(text, len(ids[row]), rows.made[row], finish_reason=rows.finish[row]))
        return BatchOutput(generations, padded_tokens=sum(len(row) for row in ids), inference_ms=busy_s * 1000)

    def warm_up(self) -> None:
        self.generate_batch(["Hello"], GenerationParams(max_new_tokens=2))

    def _check_room(self, ids: list[list[int]], limits: list[int]) -> None:
        if len(ids) > MAX_SEQUENCES:
            raise ValueError(f"a batch of {len(ids)} is more than the {MAX_SEQUENCES} sequences llama.cpp runs at once")
        needed = sum(len(row) for row in ids) + sum(limits)
        if needed > self.capacity:
            raise ValueError(f"this batch needs {needed} tokens of context; the engine has {self.capacity} "
                             "(EDGE_LLAMA_CONTEXT)")  # fmt: skip

    def _decode(self, context, batch, pieces: list[tuple[int, int, int, bool]]) -> dict[int, int]:
        """Run (row, position, token, keep its logits) pieces through the model, BATCH_TOKENS a call. Only the
        last call's logits can be read: a call whose logits are kept (a prompt's last tokens, a decoding step)
        has one piece per row, so it is one call. Returns each row's index of its kept logits."""
        assert not any(keep for *_, keep in pieces) or len(pieces) <= BATCH_TOKENS
        kept: dict[int, int] = {}
        for start in range(0, len(pieces), BATCH_TOKENS):
            part = pieces[start : start + BATCH_TOKENS]
            kept = {}
            for index, (row, pos, token, keep) in enumerate(part):
                batch.token[index], batch.pos[index], batch.logits[index] = token, pos, keep
                batch.n_seq_id[index], batch.seq_id[index][0] = 1, row
                if keep:
                    kept[row] = index
            batch.n_tokens = len(part)
            status = self.lib.llama_decode(context, batch)
            if status != 0:
                raise RuntimeError(f"llama_decode failed ({status})")
        return kept

    def _pick(self, context, last: dict[int, int], rows: int, decodings: list[Decoding], generators: dict,
              schemas: JsonRows | None, guards: dict, made: list[list[int]]) -> list[int]:  # fmt: skip
        """Each row's next token (-1 for a row that did not decode this step) from its logits: its repeat control
        (if it asks for one) and the tokens its schema does not allow (if it has one) come first, then it takes
        the most likely, or draws: the sampled rows draw together (inference.rows.draw_rows)."""
        newest, sampled = [-1] * rows, []
        for row, index in last.items():
            logits = self._logits(context, row, index, schemas, guards, made[row])
            if decodings[row].sampled:
                sampled.append((row, logits))
            else:
                newest[row] = int(logits.argmax())
        if sampled:
            scores = torch.from_numpy(np.stack([logits for _, logits in sampled]))
            drawn = draw_rows(scores, [decodings[row] for row, _ in sampled], [generators[row] for row, _ in sampled])
            for (row, logits), token in zip(sampled, drawn, strict=True):
                newest[row] = token if token is not None else int(logits.argmax())
        return newest

    def _logits(self, context, row: int, index: int, schemas: JsonRows | None, guards: dict,
                made: list[int]) -> np.ndarray:  # fmt: skip
        """The row's logits (a view of llama.cpp's, or a copy it may change) after its repeat control and its
        schema's mask."""
        logits = np.ctypeslib.as_array(self.lib.llama_get_logits_ith(context, index), shape=(self.vocab_size,))
        if row in guards or (schemas is not None and row in schemas.enforcers):
            scores = torch.from_numpy(logits.copy())
            if row in guards:
                guards[row].apply(made, scores)
            if schemas is not None and row in schemas.enforcers:
                schemas.constrain(row, made, scores)
            logits = scores.numpy()
        return logits


def shared_prompts(ids: list[list[int]]) -> list[int]:
    """Each row's first row with the same prompt tokens (itself where none came before): that row's prefill
    serves them all."""
    first: dict[tuple[int, ...], int] = {}
    return [first.setdefault(tuple(row), index) for index, row in enumerate(ids)]


@ctypes.CFUNCTYPE(None, ctypes.c_int, ctypes.c_char_p, ctypes.c_void_p)
def _quiet_log(level, text, data):
    """llama.cpp's log callback: only its errors (level 4), to our log."""
    if level == 4:
        log.error("llama.cpp: %s", text.decode(errors="replace").rstrip())


def load_llama_engine(
    folder: Path, *, name: str, revision: str, cache_root: Path = DEFAULT_CACHE_DIR, dtype: str = "float32"
) -> LlamaCppEngine:
    """The llama.cpp engine on a prepared model folder (its GGUF in `dtype` made once), warmed up."""
    from transformers import AutoTokenizer, GenerationConfig

    started = time.perf_counter()
    gguf = gguf_of(folder, revision, cache_root, dtype)
    try:
        eos = GenerationConfig.from_pretrained(str(folder)).eos_token_id
    except OSError:  # a folder without generation_config.json
        eos = None
    identity = EngineIdentity(model=name, revision=revision, dtype=dtype, device="cpu", engine="llama.cpp")
    context = int(os.getenv("EDGE_LLAMA_CONTEXT") or DEFAULT_CONTEXT)
    engine = LlamaCppEngine(gguf, AutoTokenizer.from_pretrained(str(folder)), identity=identity,
                            generation_eos=eos, context=context)  # fmt: skip
    engine.warm_up()
    took = time.perf_counter() - started
    log.info("model %s (%s on cpu, llama.cpp) loaded and warmed up in %.2f s", name, dtype, took)
    return engine
