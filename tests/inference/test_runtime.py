import time

import pytest
import torch
from transformers import AutoModelForCausalLM

from inference.decoding import Decoding
from inference.generation import GenerationParams
from inference.model_files import ModelConfigError, default_gguf_path, resolve_model_path
from inference.runtime import convert_gguf, load_engine
from tests.inference.stepping import run_in_steps


def test_tokenizer_pads_on_the_left(tiny_model):
    assert tiny_model.tokenizer.padding_side == "left"
    assert tiny_model.tokenizer.pad_token == "<|im_end|>"


def test_generate_batch_returns_one_result_per_prompt_with_its_own_token_counts(tiny_model):
    prompts = ["Hi", "Camera C3 detected a long linear scratch on the steel plate near the left weld seam."]
    output = tiny_model.generate_batch(prompts, GenerationParams(max_new_tokens=5))
    assert len(output.generations) == 2
    short, long = output.generations
    assert short.prompt_tokens < long.prompt_tokens
    assert long.prompt_tokens == tiny_model.count_tokens(prompts[1])
    assert output.padded_tokens == 2 * long.prompt_tokens  # the short prompt was padded to the long one
    assert all(0 < g.new_tokens <= 5 for g in output.generations)
    assert prompts[1] not in long.text  # the prompt is stripped from the output


def test_left_padding_does_not_change_a_prompt_output(tiny_model):
    prompt = "Translate this work order into English: replace worn belt."
    alone = tiny_model.generate_batch([prompt], GenerationParams(max_new_tokens=6)).generations[0]
    padded = tiny_model.generate_batch(
        ["x", prompt + " " + "and more words " * 5, prompt], GenerationParams(max_new_tokens=6)
    ).generations[2]
    assert padded == alone


def test_each_job_output_is_cut_to_its_own_limit(tiny_model):
    output = tiny_model.generate_batch(["a", "b"], GenerationParams(max_new_tokens=6), max_new_tokens_each=[2, 6])
    assert output.generations[0].new_tokens == 2
    assert output.generations[1].new_tokens == 6


def test_chat_template_is_applied_with_the_system_prompt(tiny_model):
    text = tiny_model.format_prompt("Describe the dent.", "You are on a factory floor.")
    assert "<|im_start|>system\nYou are on a factory floor." in text
    assert text.endswith("<|im_start|>assistant\n")


def test_unknown_dtype_is_refused_with_the_choices(tiny_model_path):
    with pytest.raises(ModelConfigError, match="float32, bfloat16, float16"):
        load_engine(str(tiny_model_path), dtype="int3")


def test_a_model_path_that_is_neither_gguf_nor_hf_folder_is_refused(tmp_path):
    with pytest.raises(ModelConfigError, match=r"neither a \.gguf file nor a folder"):
        resolve_model_path(str(tmp_path))


def test_bfloat16_loads_and_generates(tiny_model_path):
    model = load_engine(str(tiny_model_path), dtype="bfloat16", device="cpu")
    assert model.model.dtype == torch.bfloat16
    assert model.generate_batch(["hello"], GenerationParams(max_new_tokens=3)).generations[0].new_tokens == 3


def test_gguf_conversion_saves_a_folder_with_identical_logits(tmp_path):
    gguf = default_gguf_path()
    folder = convert_gguf(gguf, tmp_path / "smollm2")
    assert (folder / "model.safetensors").is_file()
    assert not (tmp_path / "smollm2.partial").exists()
    from_gguf = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
    from_folder = AutoModelForCausalLM.from_pretrained(str(folder), dtype=torch.float32)
    ids = torch.tensor([[1, 504, 3287, 314, 253, 1345, 30]])
    with torch.inference_mode():
        assert torch.equal(from_gguf(ids).logits, from_folder(ids).logits)


LOG = "Belt 3 slipped at station 7 and the operator restarted it. " * 20


def test_a_long_batch_in_steps_gives_the_same_output_as_in_one_call(tiny_model):
    prompts = [LOG, "Short note on belt 3."]  # the short one is left-padded to the long one
    params = GenerationParams(max_new_tokens=12)
    whole = tiny_model.generate_batch(prompts, params, max_new_tokens_each=[12, 5])
    stepped, pauses = run_in_steps(tiny_model, prompts, params, max_new_tokens_each=[12, 5], chunk_tokens=64)
    assert stepped.generations == whole.generations
    assert stepped.padded_tokens == whole.padded_tokens
    assert pauses == -(-(tiny_model.count_tokens(LOG) - 1) // 64)  # one after each prefill chunk


def test_pausing_while_decoding_changes_nothing_and_pauses_are_not_inference_time(tiny_model):
    params = GenerationParams(max_new_tokens=20)
    whole = tiny_model.generate_batch([LOG], params)
    flips = iter([False, True] * 40)
    started = time.perf_counter()
    stepped, pauses = run_in_steps(
        tiny_model,
        [LOG],
        params,
        between=lambda: time.sleep(0.05),
        chunk_tokens=10_000,
        pause_wanted=lambda: next(flips),
    )
    wall_ms = (time.perf_counter() - started) * 1000
    assert stepped.generations == whole.generations
    assert pauses > 2  # one after the prefill, then one each time pause_wanted() said yes while decoding
    assert stepped.inference_ms < wall_ms - 50 * pauses + 1


def test_a_conversations_earlier_turns_are_laid_out_in_order_before_the_prompt(tiny_model):
    turns = (("user", "Which press stopped?"), ("assistant", "Press P3."))
    text = tiny_model.format_prompt("Why did it stop?", "Be brief.", turns=turns)
    places = [text.index(part) for part in ("Be brief.", "Which press stopped?", "Press P3.", "Why did it stop?")]
    assert places == sorted(places)
    assert "assistant\nPress P3." in text  # as the model's own earlier answer, not as the user's words
    assert tiny_model.count_tokens("Why did it stop?", turns=turns) > tiny_model.count_tokens("Why did it stop?")
    assert tiny_model.format_prompt("Why did it stop?", turns=turns, raw=True) == "Why did it stop?"
    alone, with_turns = tiny_model.generate_batch(
        ["Why did it stop?"] * 2, GenerationParams(max_new_tokens=4),
        decodings=[Decoding(), Decoding(turns=turns)],
    ).generations  # fmt: skip
    assert alone.prompt_tokens == len(tiny_model.token_ids("Why did it stop?"))
    assert with_turns.prompt_tokens == len(tiny_model.token_ids("Why did it stop?", turns=turns))
