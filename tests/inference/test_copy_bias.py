"""The copy bias (inference.copy_bias): the request's ids and numbers favoured while the output lacks them, the
guard on its own, with the repeat control, then on the real (tiny) model in both engines."""

import pytest
import torch

from inference.copy_bias import CopyGuard, Guards, row_guards
from inference.decoding import GREEDY, Decoding
from inference.generation import GenerationParams
from inference.llama_engine import available
from inference.repetition import RepeatGuard

PROMPTS = ["Camera C3 detected a dent on press P3.", "Translate this work order into English: replace the belt."]
PARAMS = GenerationParams(max_new_tokens=12)
# A made-up tokenizer: "P3" is two tokens alone and two others after a space; "120" is one.
VOCABULARY = {"P3": [1, 2], " P3": [3, 2], "120": [7], " 120": [8]}


def encode(text: str) -> list[int]:
    return VOCABULARY[text]


def test_an_item_is_favoured_by_its_first_token_then_continued_then_left_alone_once_carried():
    guard = CopyGuard(["P3", "120"], 2.0, encode)
    assert guard.favoured([]) == {1, 3, 7, 8}  # each item may begin alone or after a space
    assert guard.favoured([5, 3]) == {2}  # " P" begun: only its "3", which finishes it
    assert guard.favoured([5, 3, 2]) == {7, 8}  # P3 carried
    assert guard.favoured([5, 3, 2, 9, 8]) == set()  # and 120: nothing left to favour


def test_the_bias_is_added_to_the_favoured_tokens_and_never_lifts_a_ban():
    scores = torch.zeros(10)
    CopyGuard(["120"], 2.5, encode).apply([], scores)
    assert scores[7] == scores[8] == 2.5 and scores.sum() == 5.0
    guards = Guards([RepeatGuard(Decoding(no_repeat_ngram=2)), CopyGuard(["120"], 2.5, encode)])
    scores = torch.zeros(10)
    guards.apply([8, 4, 8], scores)  # (8, 4) was made: 4 is banned after 8; 120 was carried already
    assert scores[4] == float("-inf") and torch.isfinite(scores[torch.arange(10) != 4]).all()


def test_rows_get_guards_only_for_what_they_ask():
    decodings = [GREEDY, Decoding(copy_items=("P3",), copy_bias=2.0), Decoding(copy_bias=2.0),
                 Decoding(no_repeat_ngram=3)]  # fmt: skip
    assert list(row_guards(decodings, encode)) == [1, 3]  # a bias without items favours nothing


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
    steps = tiny_model.generate_in_steps(PROMPTS, PARAMS, decodings=decodings, chunk_tokens=2,
                                         pause_wanted=lambda: True)  # fmt: skip
    try:
        while True:
            next(steps)
    except StopIteration as done:
        assert done.value.generations == whole


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
