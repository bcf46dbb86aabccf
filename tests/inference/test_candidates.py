"""Several candidates per job in one batch (inference.candidates), on the real (tiny) model: the rows each job
takes, the candidate its pick chooses, a pick that fails, and a batch of single jobs left as it was."""

import pytest

from inference.batch_time import padded_tokens
from inference.candidates import WithCandidates, candidate_decodings, expand
from inference.decoding import GREEDY, Decoding
from inference.generation import GenerationParams
from inference.store.queue import QueuedJob

PROMPTS = ["Camera C3 detected a dent.", "Translate this work order into English: replace the worn belt."]
PARAMS = GenerationParams(max_new_tokens=6)
THREE = Decoding(candidates=3, no_repeat_ngram=2, language="en")


def pick_last(prompt, system, candidates, decoding):
    return len(candidates) - 1, {"candidates": [c.text for c in candidates], "asked": decoding.language}


def test_a_job_of_n_candidates_is_itself_then_n_minus_1_seeded_samples():
    rows = candidate_decodings(Decoding(candidates=3, seed=10, no_repeat_ngram=4))
    assert rows[0] == Decoding(seed=10, no_repeat_ngram=4)
    assert [(r.sampled, r.seed, r.no_repeat_ngram, r.candidates) for r in rows[1:]] == [
        (True, 11, 4, 1),
        (True, 12, 4, 1),
    ]
    assert candidate_decodings(GREEDY) == [GREEDY]


def test_rows_are_laid_out_job_by_job_and_count_in_the_batchs_padded_tokens():
    expanded = expand(PROMPTS, PARAMS, None, [4, 6], [THREE, GREEDY])
    assert expanded.rows_of == [[0, 1, 2], [3]]
    assert expanded.inputs["prompts"] == [PROMPTS[0]] * 3 + [PROMPTS[1]]
    assert expanded.inputs["max_new_tokens_each"] == [4, 4, 4, 6]
    jobs = [QueuedJob(1, "a", 4, prompt_tokens=10, decoding=THREE), QueuedJob(2, "b", 4, prompt_tokens=7)]
    assert padded_tokens(jobs) == 4 * 10  # four rows, padded to the longest prompt


def test_the_picked_candidate_answers_with_why_and_the_other_job_is_untouched(tiny_model):
    engine = WithCandidates(tiny_model, pick_last)
    steps = []
    output = engine.generate_batch(PROMPTS, PARAMS, decodings=[THREE, GREEDY], on_step=steps.append)
    rows = tiny_model.generate_batch([PROMPTS[0]] * 3, PARAMS, decodings=candidate_decodings(THREE)).generations
    first, second = output.generations
    assert first.text == rows[2].text and first.choice["chosen"] == 2 and first.choice["asked"] == "en"
    assert first.choice["candidates"] == [row.text for row in rows] and first.choice["rerank_ms"] >= 0
    assert second == tiny_model.generate_batch([PROMPTS[1]], PARAMS).generations[0]
    assert all(len(step) == 2 for step in steps)  # the step hook speaks per job, not per row


def test_a_pick_that_fails_leaves_the_first_candidate_and_says_why(tiny_model):
    def broken(*args):
        raise RuntimeError("no embedding model")

    output = WithCandidates(tiny_model, broken).generate_batch(PROMPTS[:1], PARAMS, decodings=[THREE])
    [generation] = output.generations
    assert generation.choice["chosen"] == 0 and "no embedding model" in generation.choice["error"]
    assert (
        generation.text
        == tiny_model.generate_batch(PROMPTS[:1], PARAMS, decodings=[candidate_decodings(THREE)[0]]).generations[0].text
    )


@pytest.mark.parametrize("engine_of", [lambda m: m, lambda m: WithCandidates(m, pick_last)])
def test_a_batch_of_single_jobs_runs_as_on_the_engine_itself(tiny_model, engine_of):
    ours, theirs = engine_of(tiny_model).generate_batch(PROMPTS, PARAMS), tiny_model.generate_batch(PROMPTS, PARAMS)
    assert (ours.generations, ours.padded_tokens) == (theirs.generations, theirs.padded_tokens)


def test_a_long_batch_in_steps_picks_as_one_call_does(tiny_model):
    engine = WithCandidates(tiny_model, pick_last)
    whole = engine.generate_batch(PROMPTS, PARAMS, decodings=[THREE, GREEDY]).generations
    steps = engine.generate_in_steps(PROMPTS, PARAMS, decodings=[THREE, GREEDY], chunk_tokens=2,
                                     pause_wanted=lambda: True)  # fmt: skip
    with pytest.raises(StopIteration) as done:
        while True:
            next(steps)
    assert [(g.text, g.choice and g.choice["chosen"]) for g in done.value.value.generations] == [
        (g.text, g.choice and g.choice["chosen"]) for g in whole
    ]


def test_a_kept_output_keeps_its_choice_for_the_store_after_a_crash():
    from inference.batch import BatchRun, JobResult
    from inference.kept_results import batches_from_kept, kept_fields
    from inference.settings import SchedulerSettings

    job = QueuedJob(7, "p", 4, decoding=THREE)
    why = {"chosen": 1, "candidates": [{"text": "a"}, {"text": "b"}], "rerank_ms": 3.5}
    batch = BatchRun("b1", "w", [job], SchedulerSettings(), "short", 60, 0.0, 0.0, 1.0)
    batch.results.append(JobResult(7, "b", 3, 2, 0.0, "stop", choice=why))
    job.kept = kept_fields(batch)[7]
    [again] = batches_from_kept([job])
    assert again.results[0].choice == why and again.results[0].text == "b"
