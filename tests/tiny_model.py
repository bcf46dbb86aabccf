"""A tiny random-weight Llama with SmolLM2's real tokenizer (taken from the GGUF), built once and cached."""

from pathlib import Path

import torch
from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

from inference.model_files import default_gguf_path

VERSION = "1"  # bump when the recipe changes
CACHE = Path(__file__).resolve().parent.parent / ".cache" / f"tiny-model-v{VERSION}"


def tiny_model_dir() -> Path:
    if (CACHE / "config.json").is_file():
        return CACHE
    gguf = default_gguf_path()
    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    torch.manual_seed(0)
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
    partial = CACHE.with_name(CACHE.name + ".partial")
    LlamaForCausalLM(config).save_pretrained(partial)
    tokenizer.save_pretrained(partial)
    partial.rename(CACHE)
    return CACHE
