"""Repetition control that spares the prompt (inference.repetition): the guard on its own, then on the real
(tiny) model in both engines."""

import pytest
import torch

from inference.decoding import GREEDY, Decoding
from inference.generation import GenerationParams
from inference.repetition import RepeatGuard, repeat_guards
from tests.inference.stepping import run_in_steps

PROMPTS = ["Camera C3 detected a dent.", "Translate this work order into English: replace the worn belt."]
PARAMS = GenerationParams(max_new_tokens=12)
NO_REPEAT = Decoding(no_repeat_ngram=2)


def ngrams(tokens: list[int], n: int) -> list[tuple[int, ...]]:
    return [tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]


def test_a_token_that_would_repeat_an_ngram_of_the_output_is_banned():
    guard = RepeatGuard(Decoding(no_repeat_ngram=3))
    assert guard.banned([5, 6, 7, 5]) == set()  # 5 was followed by 6 only as part of (5, 6, 7): needs (7, 5)
    assert guard.banned([5, 6, 7, 5, 6]) == {7}  # (5, 6, 7) again
    assert guard.banned([5, 6, 7, 5, 6, 8, 5, 6]) == {7, 8}  # kept up incrementally across steps


def test_a_unigram_ban_forbids_every_token_already_made():
    assert RepeatGuard(Decoding(no_repeat_ngram=1)).banned([4, 9, 4]) == {4, 9}


def test_the_penalty_lowers_tokens_already_made_whatever_their_sign_and_leaves_the_others():
    guard = RepeatGuard(Decoding(repetition_penalty=2.0))
    scores = torch.tensor([4.0, -4.0, 4.0, -4.0])
    guard.apply([0, 1], scores)
    assert scores.tolist() == [2.0, -8.0, 4.0, -4.0]


def test_rows_without_control_or_with_a_schema_get_no_guard():
    decodings = [GREEDY, NO_REPEAT, Decoding(no_repeat_ngram=2, json_schema='{"type":"object"}')]
    assert list(repeat_guards(decodings)) == [1]


def generated(engine, decodings, prompts=PROMPTS) -> list[list[int]]:
    steps = []
    engine.generate_batch(prompts, PARAMS, decodings=decodings, on_step=steps.append)
    return [[step[row] for step in steps if step[row] is not None] for row in range(len(prompts))]


def test_a_looping_greedy_row_stops_repeating_and_its_batch_mate_is_untouched(tiny_model):
    plain = generated(tiny_model, [GREEDY, GREEDY])
    assert len(set(ngrams(plain[0], 2))) < len(plain[0]) - 1  # the tiny model loops on its own
    controlled = generated(tiny_model, [NO_REPEAT, GREEDY])
    assert len(set(ngrams(controlled[0], 2))) == len(controlled[0]) - 1  # no bigram twice
    assert controlled[1] == plain[1]


def test_the_prompt_does_not_count_as_a_repeat():
    """The transformers engine's processor reads each row's output after the batch's prompt length: a pair the
    prompt holds may be generated, a pair the output already holds may not."""
    from inference.rows import Rows
    from inference.runtime import _RepeatControl

    rows = Rows([NO_REPEAT], [10], set(), lambda ids: "", None)
    control = _RepeatControl(repeat_guards([NO_REPEAT]), rows, prompt_length=3)

    def allowed_after(ids: list[int]) -> torch.Tensor:
        scores = torch.zeros(1, 8)
        control(torch.tensor([ids]), scores)
        return torch.isfinite(scores[0])

    assert allowed_after([5, 6, 1, 5]).all()  # the prompt's (5, 6) does not ban 6 after the output's 5
    assert not allowed_after([5, 6, 1, 5, 6, 2, 5])[6]  # the output's own (5, 6) does
    assert allowed_after([5, 6, 1, 5, 6, 2, 5, 7]).all()  # after 7, nothing to repeat


@pytest.mark.parametrize(
    "decoding", [NO_REPEAT, Decoding(repetition_penalty=1.3), Decoding(temperature=1.0, seed=4, no_repeat_ngram=3)]
)
def test_steps_with_pauses_keep_the_control_of_one_call(tiny_model, decoding):
    whole = tiny_model.generate_batch(PROMPTS, PARAMS, decodings=[decoding, GREEDY]).generations
    stepped, _ = run_in_steps(
        tiny_model, PROMPTS, PARAMS, decodings=[decoding, GREEDY], chunk_tokens=2, pause_wanted=lambda: True
    )
    assert stepped.generations == whole
