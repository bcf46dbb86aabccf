"""The copy bias (inference.copy_bias): the request's ids and numbers favoured while the output lacks them, the
guard on its own, with the repeat control, then on the real (tiny) model in both engines."""

import pytest
import torch

from inference.copy_bias import MAX_RISE, RISE_TOKENS, CopyGuard, Guards, row_guards
from inference.decoding import GREEDY, Decoding
from inference.generation import GenerationParams
from inference.llama_engine import available
from inference.repetition import RepeatGuard
from tests.inference.stepping import run_in_steps

PROMPTS = ["Camera C3 detected a dent on press P3.", "Translate this work order into English: replace the belt."]
PARAMS = GenerationParams(max_new_tokens=12)


def guard(tiny_model, items, bias=2.0) -> CopyGuard:
    return CopyGuard(items, bias, tiny_model._item_tokens, tiny_model.decode)


def favoured(tiny_model, items: list[str], output: str) -> tuple[list[str], list[bool]]:
    """The tokens the guard favours after the output (as text, SmolLM2's tokenizer: "Ġ" is a space), and which
    items it counts as carried."""
    copy = guard(tiny_model, items)
    tokens = copy.favoured(tiny_model._item_tokens(output) if output else [])
    return sorted(tiny_model.tokenizer.convert_ids_to_tokens(sorted(tokens))), copy.carried


def test_an_item_begins_where_a_word_may_and_a_begun_one_is_finished_first(tiny_model):
    assert favoured(tiny_model, ["P3", "120 °C"], "") == (["1", "P", "ĠP"], [False, False])
    assert favoured(tiny_model, ["P3"], "Check") == (["ĠP"], [False])  # after a word: with its space
    assert favoured(tiny_model, ["P3", "120 °C"], "Check P") == (["3"], [False, False])  # "P" begun: its "3"
    assert favoured(tiny_model, ["P3"], "相机") == (["P", "ĠP"], [False])  # an id may follow a CJK character


def test_a_number_the_model_is_writing_is_never_pushed_towards_an_item(tiny_model):
    assert favoured(tiny_model, ["120"], "Wait 1")[0] == []  # "1" may be "10": not begun, and no space in it
    assert favoured(tiny_model, ["120"], "Wait 12")[0] == ["0"]  # two of its characters: begun
    assert favoured(tiny_model, ["120"], "Check ")[0] == ["1"]
    assert favoured(tiny_model, ["P3"], "Wait 1")[0] == []  # nor split by another item


def test_an_item_written_another_way_counts_as_carried(tiny_model):
    for items, output in [(["P3", "120 °C"], "Check P3 at 120°C now."), (["P3"], "Press P-3 now"),
                          (["AGV-B2"], "AGV B2 stopped")]:  # fmt: skip
        tokens, carried = favoured(tiny_model, items, output)
        assert tokens == [] and all(carried), output


def test_the_bias_is_added_to_the_favoured_tokens_and_never_lifts_a_ban(tiny_model):
    copy = guard(tiny_model, ["P3"], bias=2.5)
    scores = torch.zeros(tiny_model.tokenizer.vocab_size)
    copy.apply([], scores)
    assert sorted(scores.nonzero().flatten().tolist()) == sorted(copy.favoured([])) and scores.max() == 2.5
    check = tiny_model._item_tokens("Check")
    guards = Guards([RepeatGuard(Decoding(no_repeat_ngram=2)), guard(tiny_model, ["P3"], bias=2.5)])
    [space_p] = tiny_model._item_tokens(" P")
    made = [*check, space_p, *check]  # (Check, " P") was made: " P" is banned after "Check"
    scores = torch.zeros(tiny_model.tokenizer.vocab_size)
    guards.apply(made, scores)
    assert scores[space_p] == float("-inf")


def test_the_bias_rises_while_the_output_goes_on_without_the_item(tiny_model):
    copy = guard(tiny_model, ["P3"], bias=2.0)
    made = tiny_model._item_tokens(" ".join(["Check the press and the belt now"] * 8))  # no P3 in it
    assert [copy.bias_after(n) for n in (0, RISE_TOKENS, RISE_TOKENS * 4, len(made))] == [2.0, 4.0, 6.0, 6.0]
    scores = torch.zeros(tiny_model.tokenizer.vocab_size)
    copy.apply(made, scores)
    assert copy.favoured(made) and scores.max() == 2.0 * MAX_RISE
    copy.apply([*made, *tiny_model._item_tokens(" P3")], scores := torch.zeros_like(scores))
    assert copy.carried == [True] and not scores.any()  # carried: no bias, however long the output


def test_rows_get_guards_only_for_what_they_ask():
    decodings = [GREEDY, Decoding(copy_items=("P3",), copy_bias=2.0), Decoding(copy_bias=2.0),
                 Decoding(no_repeat_ngram=3)]  # fmt: skip
    assert list(row_guards(decodings, str.split, str)) == [1, 3]  # a bias without items favours nothing


def test_on_the_model_a_strong_bias_makes_the_output_carry_the_item(tiny_model):
    asked = Decoding(copy_items=("P3",), copy_bias=8.0)
    plain, favoured = (
        tiny_model.generate_batch(PROMPTS, PARAMS, decodings=[decoding, GREEDY]).generations
        for decoding in (GREEDY, asked)
    )
    assert "P3" not in plain[0].text and "P3" in favoured[0].text
    assert favoured[1] == plain[1]  # its batch mate is untouched


def test_steps_with_pauses_keep_the_bias_of_one_call(tiny_model):
    decodings = [Decoding(copy_items=("P3", "C3"), copy_bias=3.0, no_repeat_ngram=3), GREEDY]
    whole = tiny_model.generate_batch(PROMPTS, PARAMS, decodings=decodings).generations
    stepped, _ = run_in_steps(
        tiny_model, PROMPTS, PARAMS, decodings=decodings, chunk_tokens=2, pause_wanted=lambda: True
    )
    assert stepped.generations == whole


@pytest.mark.skipif(available() is not None, reason=f"llama.cpp engine: {available()}")
def test_the_llama_engine_favours_as_the_reference_does(tiny_model, tiny_model_path):
    from inference.llama_engine import load_llama_engine
    from inference.model_files import model_revision

    llama = load_llama_engine(tiny_model_path, name=tiny_model_path.name, revision=model_revision(tiny_model_path))
    decodings = [Decoding(copy_items=("P3",), copy_bias=8.0), Decoding(temperature=1.0, seed=11, copy_items=("C3",),
                                                                        copy_bias=3.0)]  # fmt: skip
    ours = llama.generate_batch(PROMPTS, PARAMS, decodings=decodings).generations
    assert ours == tiny_model.generate_batch(PROMPTS, PARAMS, decodings=decodings).generations
    assert "P3" in ours[0].text
