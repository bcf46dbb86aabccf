"""The resident model: find it, load it once (converting GGUF to a safetensors cache), warm it up, generate batches."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer
from transformers.utils import logging as hf_logging

from inference.generation import BatchOutput, Generation, GenerationParams
from inference.model_files import DEFAULT_CACHE_DIR, ModelConfigError, gguf_cache_dir, resolve_model_path

log = logging.getLogger(__name__)

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def dtype_from_name(name: str) -> torch.dtype:
    try:
        return DTYPES[name]
    except KeyError:
        raise ModelConfigError(f"EDGE_DTYPE must be one of {', '.join(DTYPES)}, got {name!r}") from None


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


class ResidentModel:
    """A causal LM and its tokenizer, loaded once and reused for every batch."""

    def __init__(self, model, tokenizer, *, name: str, dtype: str):
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.name = name
        self.dtype = dtype
        tokenizer.padding_side = "left"  # decoder-only models continue from the right edge
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        self.stop_ids = {tokenizer.eos_token_id, tokenizer.pad_token_id} - {None}

    def format_prompt(self, prompt: str, system_prompt: str | None = None) -> str:
        if not self.tokenizer.chat_template:
            return prompt
        messages = [{"role": "system", "content": system_prompt}] if system_prompt else []
        messages.append({"role": "user", "content": prompt})
        return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)

    def count_tokens(self, prompt: str, system_prompt: str | None = None) -> int:
        return len(self.tokenizer(self.format_prompt(prompt, system_prompt), add_special_tokens=False).input_ids)

    def generate_batch(
        self,
        prompts: Sequence[str],
        params: GenerationParams | None = None,
        *,
        system_prompts: Sequence[str | None] | None = None,
        max_new_tokens_each: Sequence[int] | None = None,
    ) -> BatchOutput:
        """Greedy generation for a whole batch; each job's output is cut to its own token limit."""
        params = params or GenerationParams()
        if not prompts:
            return BatchOutput([], 0, 0.0)
        systems = system_prompts or [None] * len(prompts)
        texts = [self.format_prompt(p, s) for p, s in zip(prompts, systems, strict=True)]
        encoded = self.tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
        started = time.perf_counter()
        with torch.inference_mode():
            output = self.model.generate(
                **encoded,
                max_new_tokens=params.max_new_tokens,
                do_sample=False,
                pad_token_id=self.tokenizer.pad_token_id,
            )
        inference_ms = (time.perf_counter() - started) * 1000
        prompt_len = encoded.input_ids.shape[1]
        limits = max_new_tokens_each or [params.max_new_tokens] * len(prompts)
        generations = []
        for row, mask, limit in zip(output, encoded.attention_mask, limits, strict=True):
            new_ids = row[prompt_len:].tolist()[:limit]
            for i, token in enumerate(new_ids):
                if token in self.stop_ids:
                    new_ids = new_ids[:i]
                    break
            # Model output is untrusted text: drop NUL, which no database stores.
            text = self.tokenizer.decode(new_ids, skip_special_tokens=True).replace("\x00", "").strip()
            generations.append(Generation(text=text, prompt_tokens=int(mask.sum()), new_tokens=len(new_ids)))
        return BatchOutput(generations, padded_tokens=int(encoded.input_ids.numel()), inference_ms=inference_ms)

    def warm_up(self) -> None:
        self.generate_batch(["Hello"], GenerationParams(max_new_tokens=2))


def load_model(spec: str | None = None, dtype: str = "float32", cache_root: Path = DEFAULT_CACHE_DIR) -> ResidentModel:
    torch_dtype = dtype_from_name(dtype)
    hf_logging.disable_progress_bar()  # worker logs are read by people: one line per load, not bars
    started = time.perf_counter()
    folder = prepare_model_folder(spec, cache_root)
    model = AutoModelForCausalLM.from_pretrained(str(folder), dtype=torch_dtype)
    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    resident = ResidentModel(model, tokenizer, name=Path(spec).name if spec else "SmolLM2-135M-Instruct", dtype=dtype)
    resident.warm_up()
    log.info("model %s (%s) loaded and warmed up in %.2f s", resident.name, dtype, time.perf_counter() - started)
    return resident


def load_model_from_env() -> ResidentModel:
    return load_model(os.getenv("EDGE_MODEL") or None, os.getenv("EDGE_DTYPE", "float32"))
