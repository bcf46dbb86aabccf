"""The KV cache that grows in room (inference/kv_cache.py): the same keys, values and outputs as transformers'
DynamicCache, without copying the whole cache at each step."""

import gc
import importlib.util
import sys
import weakref
from pathlib import Path

import torch
from transformers import DynamicCache, LlamaConfig, MistralConfig

from inference.decoding import GREEDY, Decoding
from inference.generation import GenerationParams
from inference.kv_cache import GROWTH_TOKENS, GrowingCache, GrowingLayer, growing_cache
from tests.inference.stepping import run_in_steps

ROOT = Path(__file__).resolve().parents[2]
SMALL = {"num_hidden_layers": 2, "hidden_size": 16, "num_attention_heads": 2, "num_key_value_heads": 1,
         "intermediate_size": 32, "vocab_size": 50}  # fmt: skip
PROMPTS = ["Camera C3 detected a dent.", "Translate this work order into English: replace the worn belt.",
           "Camera C3 detected a dent."]  # fmt: skip
DECODINGS = [GREEDY, Decoding(temperature=1.0, seed=11), Decoding(temperature=0.8, top_p=0.9, seed=3)]


def states(batch: int, length: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return tuple(torch.randn(batch, 2, length, 4, generator=generator) for _ in range(2))


def test_the_engine_answers_as_it_does_with_transformers_own_cache(tiny_model, monkeypatch):
    params = GenerationParams(max_new_tokens=12)

    def answers():
        whole = tiny_model.generate_batch(PROMPTS, params, decodings=DECODINGS).generations
        stepped, _ = run_in_steps(tiny_model, PROMPTS, params, decodings=DECODINGS, chunk_tokens=3,
                                  pause_wanted=lambda: True)  # fmt: skip
        return whole, stepped.generations

    growing = answers()
    monkeypatch.setattr("inference.runtime.growing_cache", lambda config, tokens: DynamicCache(config=config))
    assert answers() == growing
    assert [row.new_tokens for row in growing[0]] == [12, 12, 12]


def test_a_step_writes_into_the_room_the_batch_needs_and_the_room_grows_only_when_full():
    layer, reference = GrowingLayer(tokens=9), DynamicCache(config=LlamaConfig(**SMALL)).layers[0]
    for length, seed in ((5, 0), *((1, step) for step in range(1, 6))):
        keys, values = states(2, length, seed)
        got, expected = layer.update(keys, values), reference.update(keys, values)
        assert all(torch.equal(a, b) for a, b in zip(got, expected, strict=True))
        if seed == 1:
            room = layer.keys.data_ptr()
            assert layer._room[0].shape[-2] == 9  # room for the 9 tokens it was told of, no more
        if 1 <= seed <= 4:  # 5 + 4 tokens fit the room made at the first step
            assert layer.keys.data_ptr() == room
    assert layer.keys.data_ptr() != room and layer.get_seq_length() == 10
    assert layer._room[0].shape[-2] == 10 + GROWTH_TOKENS  # past it, room for a few steps more, not one


def test_the_engine_makes_room_for_the_prompt_and_the_first_new_tokens_not_for_every_one_allowed(tiny_model):
    encoded = tiny_model._encode(PROMPTS, None, DECODINGS)  # rows 0 and 2 share a prompt: prefilled once
    cache = tiny_model._cache_for(encoded, 1024)
    assert isinstance(cache, GrowingCache)
    assert {layer.tokens for layer in cache.layers} == {encoded.input_ids.shape[1] + GROWTH_TOKENS}
    assert cache.layers[0]._room is None  # the unique rows' room let go of once copied to every row
    alone = tiny_model._cache_for(tiny_model._encode(PROMPTS[:2], None, DECODINGS[:2]), 16)
    assert isinstance(alone, GrowingCache) and alone.get_seq_length() == 0  # generate() prefills
    assert alone.layers[0].tokens == tiny_model._encode(PROMPTS[:2], None, DECODINGS[:2]).input_ids.shape[1] + 16


def test_a_reordered_cache_lets_go_of_its_room_at_once():
    layer = GrowingLayer(tokens=64)
    layer.update(*states(2, 5, 0))
    room = weakref.ref(layer._room[0])
    layer.reorder_cache(torch.tensor([0, 0, 1, 1]))
    gc.collect()
    assert room() is None and layer.keys.shape == (4, 2, 5, 4)


def test_a_cache_reordered_cropped_or_narrowed_goes_on_from_what_it_holds():
    layer, reference = GrowingLayer(tokens=8), DynamicCache(config=LlamaConfig(**SMALL)).layers[0]
    changes = [
        lambda cache: cache.reorder_cache(torch.tensor([1, 0, 0])),  # as a job's candidates share a prompt
        lambda cache: cache.crop(-2),
        lambda cache: cache.batch_select_indices(torch.tensor([0, 2])),
        # any other code that puts tensors of its own there (offloading does)
        lambda cache: setattr(cache, "keys", states(2, 7, 20)[0]) or setattr(cache, "values", states(2, 7, 21)[0]),
    ]
    for seed, change in enumerate(changes):
        keys, values = states(layer.keys.shape[0] if layer.is_initialized else 2, 3, seed)
        for cache in (layer, reference):
            cache.update(keys, values)
            change(cache)
        keys, values = states(layer.keys.shape[0], 1, 10 + seed)
        assert all(
            torch.equal(a, b) for a, b in zip(layer.update(keys, values), reference.update(keys, values), strict=True)
        )


def test_a_model_with_sliding_window_layers_keeps_transformers_cache():
    assert isinstance(growing_cache(LlamaConfig(**SMALL), 8), GrowingCache)
    sliding = growing_cache(MistralConfig(**SMALL, sliding_window=4), 8)
    assert type(sliding) is DynamicCache and len(sliding.layers) == 2


def test_the_benchmark_times_both_caches_in_turns_and_compares_their_tokens(tiny_model):
    spec = importlib.util.spec_from_file_location("kv_cache_bench", ROOT / "bench" / "kv_cache.py")
    bench = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(ROOT / "bench"))  # its harness
    try:
        spec.loader.exec_module(bench)
        result = bench.decode_steps(tiny_model, PROMPTS, steps=3, rounds=2)
    finally:
        sys.path.remove(str(ROOT / "bench"))
    assert result["same_tokens"] and result["rows"] == 3
    assert all(len(result["ms_per_step"][kind]) == 2 for kind in ("concatenation", "growing"))
    assert "| 3 x " in bench.section({"short": result}, command="make bench-kv-cache", steps=3)
