"""The reranker's rules: a loop, an empty or cut answer, the wrong language or dropped ids lose; ties go first."""

import json
import zlib

import pytest
import torch

from edgeportal.outputs.reranking import best_candidate, candidate_scores, score_candidate

REQUEST = "Press line P3 reports current fluctuation on PLC-7 at 400 V. List the inspection steps."
SOUND = "Press line P3: check the current sensor on PLC-7, tighten its cables, then test the drive at 400 V."


class WordCountEmbedder:
    """Bags of words as unit vectors: texts that share words are similar. Counts its calls."""

    def __init__(self):
        self.calls = 0

    def embed(self, texts: list[str]) -> torch.Tensor:
        self.calls += 1
        rows = torch.zeros(len(texts), 256)
        for row, text in enumerate(texts):
            for word in text.lower().split():
                rows[row, zlib.crc32(word.strip(".,:").encode()) % 256] += 1
        return torch.nn.functional.normalize(rows, dim=1)


def scores_of(candidates, *, language=None, finish_reasons=None, max_chars=None):
    return candidate_scores(
        REQUEST,
        candidates,
        language=language,
        finish_reasons=finish_reasons or ["stop"] * len(candidates),
        embedder=WordCountEmbedder(),
        max_chars=max_chars,
    )


def test_a_sound_answer_carries_every_id_and_passes_every_check():
    [score] = scores_of([SOUND], language="en")
    assert score.echo_share == 1.0 and score.missing_items == ()
    assert score.language_ok is True and score.loop_free and score.length_problem is None
    assert score.similarity > 0.3


def test_a_loop_loses_even_when_it_repeats_the_request_word_for_word():
    scores = scores_of([REQUEST + " " + REQUEST + " " + REQUEST, SOUND])
    assert not scores[0].loop_free and scores[0].echo_share == 1.0
    assert best_candidate(scores) == 1


def test_an_empty_answer_loses():
    scores = scores_of(["  ", SOUND])
    assert scores[0].length_problem == "empty"
    assert best_candidate(scores) == 1


def test_an_answer_cut_at_the_token_limit_loses():
    scores = scores_of([SOUND + " Then check", SOUND], finish_reasons=["length", "stop"])
    assert scores[0].length_problem == "truncated"
    assert best_candidate(scores) == 1


def test_an_answer_longer_than_its_output_allows_loses():
    scores = scores_of([SOUND + " Also log the readings on P3 and PLC-7 at 400 V.", SOUND], max_chars=len(SOUND))
    assert scores[0].length_problem == "too long"
    assert best_candidate(scores) == 1


def test_an_answer_in_another_language_loses():
    spanish = "Línea de prensa P3: revise el sensor de corriente del PLC-7 y pruebe el accionamiento a 400 V."
    scores = scores_of([spanish, SOUND], language="en")
    assert scores[0].language_ok is False and scores[0].detected_language == "es"
    assert best_candidate(scores) == 1


def test_an_answer_that_drops_the_ids_loses():
    scores = scores_of(["Check the current sensor, tighten its cables, then test the drive.", SOUND])
    assert scores[0].missing_items == ("P3", "PLC-7", "400 V")
    assert best_candidate(scores) == 1


def test_a_failed_check_loses_against_any_sound_answer_however_far_from_the_request():
    items = ["P3", "PLC-7"]
    sound_but_poor = score_candidate("Restart.", similarity=-0.5, items=items, language=None, finish_reason="stop")
    looping_but_close = score_candidate(
        "P3 PLC-7 P3 PLC-7 P3 PLC-7 P3 PLC-7", similarity=1.0, items=items, language=None, finish_reason="stop"
    )
    assert looping_but_close.total < sound_but_poor.total


def test_no_language_asked_means_no_language_judged():
    [score] = scores_of([SOUND])
    assert score.language_ok is None and score.detected_language is None


def test_the_best_candidate_is_picked():
    scores = scores_of(["1. 1. 1. 1. 1. 1.", "Check PLC-7.", SOUND, ""])
    assert best_candidate(scores) == 2


def test_equal_candidates_tie_and_the_first_wins():
    scores = scores_of([SOUND, SOUND, SOUND])
    assert scores[0].total == scores[1].total == scores[2].total
    assert best_candidate(scores) == 0


def test_the_request_and_every_candidate_are_embedded_in_one_call():
    embedder = WordCountEmbedder()
    candidate_scores(REQUEST, [SOUND, "", "P3"], language=None, finish_reasons=["stop"] * 3, embedder=embedder)
    assert embedder.calls == 1


def test_each_candidate_needs_its_finish_reason():
    with pytest.raises(ValueError, match="finish reasons"):
        scores_of([SOUND, SOUND], finish_reasons=["stop"])


def test_a_score_is_stored_as_plain_json():
    [score] = scores_of([SOUND[:40]], language="en", finish_reasons=["length"])
    stored = json.loads(json.dumps(score.as_dict()))
    assert stored == {
        "similarity": score.similarity,
        "echo_share": score.echo_share,
        "missing_items": list(score.missing_items),
        "language_ok": score.language_ok,
        "detected_language": score.detected_language,
        "loop_free": True,
        "length_problem": "truncated",
        "total": score.total,
    }
