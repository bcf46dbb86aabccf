"""The semantic cache in the batch (inference.semantic_cache), on the real (tiny) model: rows the cache answers
never reach the model, the others run as they would alone, new answers are kept, and a cache fault costs only
the model's time."""

from dataclasses import replace

from inference.decoding import GREEDY, Decoding
from inference.generation import Generation, GenerationParams
from inference.semantic_cache import WithSemanticCache

PROMPTS = ["Camera C3 detected a dent.", "Press P3 reports current fluctuation.", "Translate: belt worn."]
PARAMS = GenerationParams(max_new_tokens=5)
ASKS = Decoding(semantic_threshold=0.93, semantic_group="g", semantic_text="a dent")
CACHED = Generation("From the cache.", 0, 4, "stop", cached={"similarity": 0.97})


class Recorder:
    """The engine's callers' side: what the model was asked, and a lookup and store the test controls."""

    def __init__(self, engine, answers: dict[str, Generation | None]):
        self.engine, self.answers, self.kept, self.asked = engine, answers, [], []

    def generate_batch(self, prompts, params=None, **kwargs):
        self.asked.append(list(prompts))
        return self.engine.generate_batch(prompts, params, **kwargs)

    def generate_in_steps(self, prompts, params, **kwargs):
        self.asked.append(list(prompts))
        return (yield from self.engine.generate_in_steps(prompts, params, **kwargs))

    def count_tokens(self, prompt, system_prompt=None, raw=False, turns=()):
        return self.engine.count_tokens(prompt, system_prompt, raw, turns)

    def lookup(self, decodings):
        return [(self.answers.get(d.semantic_text), f"key:{d.semantic_text}") for d in decodings]

    def store(self, key, generation):
        self.kept.append((key, generation.text))


def test_a_batch_where_no_job_asks_runs_as_on_the_engine_itself(tiny_model):
    recorder = Recorder(tiny_model, {})
    output = WithSemanticCache(recorder, recorder.lookup, recorder.store).generate_batch(PROMPTS[:2], PARAMS)
    assert output.generations == tiny_model.generate_batch(PROMPTS[:2], PARAMS).generations
    assert recorder.asked == [PROMPTS[:2]] and recorder.kept == []


def test_a_hit_takes_the_cached_answer_and_only_the_others_reach_the_model(tiny_model):
    recorder = Recorder(tiny_model, {"a dent": CACHED})
    steps = []
    output = WithSemanticCache(recorder, recorder.lookup, recorder.store).generate_batch(
        PROMPTS, PARAMS, decodings=[GREEDY, ASKS, GREEDY], on_step=steps.append
    )
    assert recorder.asked == [[PROMPTS[0], PROMPTS[2]]]
    alone = tiny_model.generate_batch([PROMPTS[0], PROMPTS[2]], PARAMS).generations
    hit = replace(CACHED, prompt_tokens=tiny_model.count_tokens(PROMPTS[1]))  # its own prompt's count
    assert output.generations == [alone[0], hit, alone[1]] and hit.prompt_tokens > 0
    assert steps and all(len(step) == 3 and step[1] is None for step in steps)  # the hit row has ended
    assert recorder.kept == []  # nothing new to keep: the asking row was a hit


def test_a_miss_runs_on_the_model_and_its_answer_is_kept_under_its_key(tiny_model):
    recorder = Recorder(tiny_model, {})
    output = WithSemanticCache(recorder, recorder.lookup, recorder.store).generate_batch(
        PROMPTS[:2], PARAMS, decodings=[ASKS, GREEDY]
    )
    assert output.generations == tiny_model.generate_batch(PROMPTS[:2], PARAMS).generations
    assert recorder.kept == [("key:a dent", output.generations[0].text)]


def test_a_batch_the_cache_answers_whole_never_calls_the_model(tiny_model):
    recorder = Recorder(tiny_model, {"a dent": CACHED})
    output = WithSemanticCache(recorder, recorder.lookup, recorder.store).generate_batch(
        PROMPTS[:2], PARAMS, decodings=[ASKS, ASKS]
    )
    assert recorder.asked == [] and output.padded_tokens == 0
    assert [g.text for g in output.generations] == [CACHED.text] * 2


def test_a_lookup_or_store_that_fails_leaves_the_jobs_to_the_model(tiny_model):
    def broken(*args):
        raise ConnectionError("Redis went away")

    engine = WithSemanticCache(tiny_model, broken, broken)
    output = engine.generate_batch(PROMPTS[:2], PARAMS, decodings=[ASKS, GREEDY])
    assert output.generations == tiny_model.generate_batch(PROMPTS[:2], PARAMS).generations

    recorder = Recorder(tiny_model, {})
    output = WithSemanticCache(tiny_model, recorder.lookup, broken).generate_batch(
        PROMPTS[:1], PARAMS, decodings=[ASKS]
    )
    assert output.generations == tiny_model.generate_batch(PROMPTS[:1], PARAMS).generations


def test_a_long_batch_in_steps_splits_the_same_way(tiny_model):
    recorder = Recorder(tiny_model, {"a dent": CACHED})
    engine = WithSemanticCache(recorder, recorder.lookup, recorder.store)
    steps = engine.generate_in_steps(PROMPTS[:2], PARAMS, decodings=[GREEDY, ASKS], chunk_tokens=4)
    try:
        while True:
            next(steps)
    except StopIteration as finished:
        output = finished.value
    assert recorder.asked == [[PROMPTS[0]]]
    assert output.generations[0] == tiny_model.generate_batch(PROMPTS[:1], PARAMS).generations[0]
    assert output.generations[1].text == CACHED.text
