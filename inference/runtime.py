"""The transformers engine, the reference: find the model, load it once on its device (converting GGUF to a
safetensors cache), warm it up, generate batches (inference.engine: the interface it keeps)."""

from __future__ import annotations

import inspect
import logging
import os
import time
from collections.abc import Callable, Generator, Sequence
from pathlib import Path

import torch
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    DynamicCache,
    LogitsProcessor,
    LogitsProcessorList,
    StoppingCriteria,
    StoppingCriteriaList,
)
from transformers.utils import logging as hf_logging

from inference.chat_tokens import ChatTokens
from inference.copy_bias import Guards, row_guards
from inference.decoding import GREEDY, Decoding, final_text
from inference.devices import resolve_device, resolve_dtype
from inference.engine import EngineIdentity
from inference.generation import BatchOutput, Generation, GenerationParams, StepCallback
from inference.json_output import JsonRows, json_rows
from inference.kv_cache import GrowingCache, growing_cache, room_for
from inference.model_files import DEFAULT_CACHE_DIR, gguf_cache_dir, model_revision, resolve_model_path
from inference.pools import ModelCatalog, model_name_of
from inference.rows import Rows, draw_rows, row_generator

log = logging.getLogger(__name__)

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def convert_gguf(gguf_path: Path, target: Path) -> Path:
    """Dequantise a GGUF file once into a safetensors folder that later loads in about a second."""
    started = time.perf_counter()
    model = AutoModelForCausalLM.from_pretrained(str(gguf_path.parent), gguf_file=gguf_path.name, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(str(gguf_path.parent), gguf_file=gguf_path.name)
    # The weights are already float32 tensors; transformers only refuses to save because it
    # remembers the GGUF quantizer. Forget it and the folder reloads with identical logits.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    partial = target.with_name(target.name + ".partial")
    model.save_pretrained(partial)
    tokenizer.save_pretrained(partial)
    partial.rename(target)  # atomic: a crash mid-save never leaves a half cache that looks complete
    log.info("converted %s to %s in %.1f s", gguf_path.name, target, time.perf_counter() - started)
    return target


def prepare_model_folder(spec: str | None, cache_root: Path = DEFAULT_CACHE_DIR) -> Path:
    path = resolve_model_path(spec)
    if path.is_dir():
        return path
    target = gguf_cache_dir(path, cache_root)
    if (target / "config.json").is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    return convert_gguf(path, target)


class TransformersEngine(ChatTokens):
    """A causal LM and its tokenizer, loaded once on its device and reused for every batch."""

    def __init__(self, model, tokenizer, *, identity: EngineIdentity):
        self.model = model.eval()
        self.identity = identity
        self.device = torch.device(identity.device)
        self.context_length = getattr(model.config, "max_position_embeddings", None)
        self._tokens_ready(tokenizer, getattr(getattr(model, "generation_config", None), "eos_token_id", None))
        # A prefill chunk needs no logits; most causal LMs can skip all but the last position.
        accepts = "logits_to_keep" in inspect.signature(model.forward).parameters
        self._prefill_options = {"logits_to_keep": 1} if accepts else {}

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
        """Generation for a whole batch (greedy, unless a row's decoding samples); each job's output is cut to
        its own token limit and stop strings. on_step gets each step's new token of every row."""
        params = params or GenerationParams()
        if not prompts:
            return BatchOutput([], 0, 0.0)
        decodings = decodings or [GREEDY] * len(prompts)
        encoded = self._encode(prompts, system_prompts, decodings)
        limits = max_new_tokens_each or [params.max_new_tokens] * len(prompts)
        processors, steps = self._controls(decodings, limits, on_step, encoded.input_ids.shape[1])
        started = time.perf_counter()
        with torch.inference_mode():
            output = self.model.generate(
                **encoded,
                past_key_values=self._cache_for(encoded, params.max_new_tokens),
                max_new_tokens=params.max_new_tokens,
                min_new_tokens=params.min_new_tokens or None,
                do_sample=False,
                pad_token_id=self.tokenizer.pad_token_id,
                logits_processor=processors,
                stopping_criteria=StoppingCriteriaList([steps]),
            )
        self._synchronize()
        inference_ms = (time.perf_counter() - started) * 1000
        return self._output(encoded, output, steps, inference_ms)

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
        """generate_batch as a generator, for long prompts: it yields after each prefill chunk of
        chunk_tokens, and during decoding whenever pause_wanted() says so. Between two steps the caller
        may run other batches; this batch's KV cache waits in memory. Greedy output is that of
        generate_batch; inference_ms counts only the time spent on this batch, not the pauses."""
        decodings = decodings or [GREEDY] * len(prompts)
        encoded = self._encode(prompts, system_prompts, decodings)
        limits = max_new_tokens_each or [params.max_new_tokens] * len(prompts)
        # One sampler, one schema mask and one step hook for the whole run: their generators and row states (JSON
        # parsers included) last across pauses.
        processors, steps = self._controls(decodings, limits, on_step, encoded.input_ids.shape[1])
        ids, mask = encoded.input_ids, encoded.attention_mask
        positions = _positions(mask)
        cache = growing_cache(self.model.config, room_for(ids.shape[1], params.max_new_tokens))
        busy_s = 0.0
        prefill_end = ids.shape[1] - 1  # generate() itself feeds the last prompt token
        for start in range(0, prefill_end, max(1, chunk_tokens)):
            end = min(start + chunk_tokens, prefill_end)
            started = time.perf_counter()
            with torch.inference_mode():
                self.model(
                    input_ids=ids[:, start:end],
                    attention_mask=mask[:, :end],
                    position_ids=positions[:, start:end],
                    past_key_values=cache,
                    use_cache=True,
                    **self._prefill_options,
                )
            self._synchronize()
            busy_s += time.perf_counter() - started
            yield
        limit = params.max_new_tokens
        pause = _PauseWanted(pause_wanted)
        stop = StoppingCriteriaList([steps, pause])
        sequences = ids
        while True:
            started = time.perf_counter()
            with torch.inference_mode():
                out = self.model.generate(
                    input_ids=sequences,
                    attention_mask=torch.cat([mask, mask.new_ones(len(ids), sequences.shape[1] - ids.shape[1])], 1),
                    past_key_values=cache,
                    max_new_tokens=limit - (sequences.shape[1] - ids.shape[1]),
                    do_sample=False,
                    pad_token_id=self.tokenizer.pad_token_id,
                    logits_processor=processors,
                    stopping_criteria=stop,
                    return_dict_in_generate=True,
                )
            self._synchronize()
            busy_s += time.perf_counter() - started
            sequences, cache = out.sequences, out.past_key_values
            new = sequences[:, ids.shape[1] :]
            if new.shape[1] >= limit or all(steps.rows.done) or not pause.fired:
                break  # generate() ended on its own: every row did
            yield  # paused: generate() stopped early because pause_wanted() said so
        return self._output(encoded, sequences, steps, busy_s * 1000)

    def _cache_for(self, encoded, new_tokens: int) -> DynamicCache | None:
        """The batch's KV cache (kv_cache.growing_cache), with the prompt in it where rows share one. None (generate()
        makes the model's own) where the model's generation config names a cache, or where the model takes
        no growing cache and no row shares its prompt."""
        if getattr(self.model.generation_config, "cache_implementation", None):
            return None
        cache = self._shared_prefill(
            encoded, growing_cache(self.model.config, room_for(encoded.input_ids.shape[1], new_tokens))
        )
        if cache.get_seq_length() == 0 and not isinstance(cache, GrowingCache):
            return None
        return cache

    def _shared_prefill(self, encoded, cache: DynamicCache) -> DynamicCache:
        """Where rows share a prompt (a job's candidates), its KV cache computed once and copied to each of them:
        all of the prompt but its last token, which generate() feeds itself. The cache left empty (generate()
        prefills) when every row's prompt is its own. The prompt's share of a batch of candidates is about half
        its work on a CPU."""
        ids, mask = encoded.input_ids, encoded.attention_mask
        # The ids and the mask: a padding token may also be a prompt's first token (end-of-text).
        first_of: dict[tuple, int] = {}
        keys = (tuple(row.tolist()) + tuple(row_mask.tolist()) for row, row_mask in zip(ids, mask, strict=True))
        source = [first_of.setdefault(key, index) for index, key in enumerate(keys)]
        if len(first_of) == len(source) or ids.shape[1] < 2:
            return cache
        unique = sorted(first_of.values())
        place = {row: index for index, row in enumerate(unique)}
        rows = torch.tensor(unique, device=ids.device)
        positions = _positions(mask)
        self.model(
            input_ids=ids[rows, :-1],
            attention_mask=mask[rows, :-1],
            position_ids=positions[rows, :-1],
            past_key_values=cache,
            use_cache=True,
            **self._prefill_options,
        )
        cache.reorder_cache(torch.tensor([place[row] for row in source], device=ids.device))
        return cache

    def _encode(self, prompts: Sequence[str], system_prompts: Sequence[str | None] | None, decodings):
        systems = system_prompts or [None] * len(prompts)
        texts = [self.format_prompt(p, s, d.raw, d.turns) for p, s, d in zip(prompts, systems, decodings, strict=True)]
        return self.tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(self.device)

    def _controls(self, decodings, limits, on_step, prompt_length: int):
        """The batch's logits processors and its step hook: the repeat control of the rows that ask for it, the
        schema mask of the rows with a JSON Schema, then the per-row sampler (each only when some row needs it: a
        free greedy batch has none), so a sampled row with a schema draws among the tokens its schema allows."""
        rows = Rows(decodings, limits, self.stop_ids, self.decode, on_step)
        processors = LogitsProcessorList()
        if guards := row_guards(decodings, self._item_tokens, self.decode):
            processors.append(_RepeatControl(guards, rows, prompt_length))
        if schemas := json_rows(decodings, self.tokenizer, self.stop_ids):
            processors.append(_JsonSchemas(schemas, rows, prompt_length))
        if sampled := [(row, d) for row, d in enumerate(decodings) if d.sampled]:
            processors.append(_RowSampling(sampled, rows, self.device))
        return processors, _Steps(rows)

    def _synchronize(self) -> None:
        """A GPU runs its kernels after the call returns: a batch's time ends when they finish."""
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def _output(self, encoded, sequences, steps: _Steps, inference_ms: float) -> BatchOutput:
        """Each row's output: the tokens the step hook counted for it (after them, a row holds padding, or
        tokens made after a pause that it ignored), cut at its stop strings."""
        rows = steps.rows
        prompt_len = encoded.input_ids.shape[1]
        generations = []
        for row, (ids, mask) in enumerate(zip(sequences, encoded.attention_mask, strict=True)):
            made = rows.made[row]
            text, _ = final_text(self.decode(ids[prompt_len : prompt_len + made].tolist()), rows.decodings[row].stop)
            generations.append(Generation(text, int(mask.sum()), made, finish_reason=rows.finish[row]))
        return BatchOutput(generations, padded_tokens=int(encoded.input_ids.numel()), inference_ms=inference_ms)

    def warm_up(self) -> None:
        self.generate_batch(["Hello"], GenerationParams(max_new_tokens=2))


def _positions(mask: torch.Tensor) -> torch.Tensor:
    """Each token's position as generate() computes them, so left padding does not shift a prompt."""
    return (mask.long().cumsum(-1) - 1).masked_fill(mask == 0, 1)


class _Steps(StoppingCriteria):
    """generate()'s view of the batch's Rows (inference.rows): called after each new token, it ends each row
    on its own (the batch goes on for the others) and hands every step's tokens to on_step."""

    def __init__(self, rows: Rows):
        self.rows = rows

    def __call__(self, input_ids: torch.LongTensor, scores, **kwargs) -> torch.BoolTensor:
        done = self.rows.step(input_ids[:, -1].tolist())
        return torch.tensor(done, dtype=torch.bool, device=input_ids.device)


class _RowSampling(LogitsProcessor):
    """Sampling for some rows of a greedy batch: each sampled row draws its token (inference.rows.draw) from
    its own seeded generator, and leaves only that token for the greedy choice to pick. Greedy rows are
    untouched, so a batch mixes both and a seeded row draws the same tokens whatever its batch."""

    def __init__(self, sampled: list[tuple[int, Decoding]], rows: Rows, device: torch.device):
        self.sampled = [(row, decoding, row_generator(decoding, device)) for row, decoding in sampled]
        self.rows = rows

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        # generate() still computes a row that has ended; its token is ignored, so it does not draw.
        live = [(row, decoding, generator) for row, decoding, generator in self.sampled if not self.rows.done[row]]
        if not live:
            return scores
        rows, decodings, generators = zip(*live, strict=True)
        drawn = draw_rows(scores[list(rows)], decodings, generators)
        for row, token in zip(rows, drawn, strict=True):
            if token is not None:
                scores[row] = torch.finfo(scores.dtype).min
                scores[row, token] = 0.0
        return scores


class _RepeatControl(LogitsProcessor):
    """The rows that control their repeats (inference.repetition), each judged on its own output: what follows
    the batch's prompt length (rows are left-padded). Only the tokens new since the last step are read from the
    device, once for all rows. A row that has ended is left alone."""

    def __init__(self, guards: dict[int, Guards], rows: Rows, prompt_length: int):
        self.guards, self.rows, self.prompt_length = guards, rows, prompt_length
        self.made: dict[int, list[int]] = {row: [] for row in guards}
        self.read = 0  # generated positions read so far (pauses included: input_ids only grows)

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        generated = input_ids.shape[1] - self.prompt_length
        if generated > self.read:
            rows = list(self.guards)
            for row, tokens in zip(rows, input_ids[rows, self.prompt_length + self.read :].tolist(), strict=True):
                self.made[row].extend(tokens)
            self.read = generated
        for row, guard in self.guards.items():
            if not self.rows.done[row]:
                guard.apply(self.made[row], scores[row])
        return scores


class _JsonSchemas(LogitsProcessor):
    """The rows with a JSON Schema keep only the tokens their schema allows next (inference.json_output), each
    by its own parser; the other rows are untouched. Rows are left-padded: a row's output is what follows the
    batch's prompt length. A row that has ended (generate() pads it) is left alone."""

    def __init__(self, schemas: JsonRows, rows: Rows, prompt_length: int):
        self.schemas, self.rows, self.prompt_length = schemas, rows, prompt_length

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        for row in self.schemas.rows:
            if not self.rows.done[row]:
                self.schemas.constrain(row, input_ids[row, self.prompt_length :].tolist(), scores[row])
        return scores


class _PauseWanted(StoppingCriteria):
    """Ends a generate() call early, after the current token, when the caller wants to pause."""

    def __init__(self, pause_wanted: Callable[[], bool]):
        self.pause_wanted = pause_wanted
        self.fired = False  # whether the last generate() call ended because of it

    def __call__(self, input_ids: torch.LongTensor, scores, **kwargs) -> torch.BoolTensor:
        self.fired = bool(self.pause_wanted())
        return torch.full((input_ids.shape[0],), self.fired, dtype=torch.bool)


def load_engine(
    spec: str | None = None,
    *,
    dtype: str = "",
    device: str = "auto",
    name: str | None = None,
    cache_root: Path = DEFAULT_CACHE_DIR,
) -> TransformersEngine:
    """The model at spec (a path as EDGE_MODEL takes it: empty for the default), on device (EDGE_DEVICE), in
    dtype (EDGE_DTYPE: empty for the device's default), loaded and warmed up. Its name: `name`, or the path's."""
    device = resolve_device(device, cuda_devices=torch.cuda.device_count())
    on_gpu = device.startswith("cuda")
    dtype = resolve_dtype(dtype, device, bf16_supported=on_gpu and torch.cuda.is_bf16_supported())
    hf_logging.disable_progress_bar()  # worker logs are read by people: one line per load, not bars
    started = time.perf_counter()
    folder = prepare_model_folder(spec, cache_root)
    model = AutoModelForCausalLM.from_pretrained(str(folder), dtype=DTYPES[dtype]).to(device)
    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    name = name or model_name_of(spec)
    identity = EngineIdentity(model=name, revision=model_revision(folder), dtype=dtype, device=device)
    engine = TransformersEngine(model, tokenizer, identity=identity)
    engine.warm_up()
    log.info("model %s (%s on %s) loaded and warmed up in %.2f s", name, dtype, device, time.perf_counter() - started)
    return engine


def load_engine_from_env():
    """The default model of EDGE_MODEL and EDGE_MODELS (inference.pools.ModelCatalog), as a worker serves it,
    on the engine EDGE_ENGINE chooses (inference.engine_choice)."""
    from inference.engine_choice import load_chosen_engine

    catalog = ModelCatalog.from_env(os.getenv("EDGE_MODEL", ""), os.getenv("EDGE_MODELS", ""))
    spec = catalog.spec_of(catalog.default) or None
    return load_chosen_engine(
        spec, os.getenv("EDGE_ENGINE", "auto"), dtype=os.getenv("EDGE_DTYPE", ""),
        device=os.getenv("EDGE_DEVICE", "auto"), name=catalog.default,
        llama_weights=os.getenv("EDGE_LLAMA_WEIGHTS", "auto"),
    )  # fmt: skip
