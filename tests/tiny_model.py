"""A tiny random-weight Llama with SmolLM2's real tokenizer (taken from the GGUF), built once and cached."""

from pathlib import Path

import torch
from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

from inference.model_files import default_gguf_path

VERSION = "1"  # bump when the recipe changes
CACHE = Path(__file__).resolve().parent.parent / ".cache" / f"tiny-model-v{VERSION}"


def tiny_model_dir(variant: str = "") -> Path:
    """The tiny model; a variant (say "b") is a second one with other random weights, for a second pool."""
    cache = CACHE.with_name(f"{CACHE.name}-{variant}") if variant else CACHE
    if (cache / "config.json").is_file():
        return cache
    gguf = default_gguf_path()
    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    torch.manual_seed(sum(map(ord, variant)))
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=4096,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    partial = cache.with_name(cache.name + ".partial")
    LlamaForCausalLM(config).save_pretrained(partial)
    tokenizer.save_pretrained(partial)
    partial.rename(cache)
    return cache
