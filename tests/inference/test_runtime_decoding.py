"""Per-row decoding in one batch on the real (tiny) transformers model: sampling, stop strings, raw prompts,
and the step hook that streams tokens."""

from collections import Counter

import torch

from inference.decoding import GREEDY, Decoding, final_text
from inference.generation import GenerationParams
from inference.rows import NUCLEUS_CANDIDATES, WIDER_CANDIDATES, draw, draw_rows, token_uniforms
from tests.inference.stepping import run_in_steps

PROMPTS = ["Camera C3 detected a dent.", "Translate this work order into English: replace the worn belt."]
PARAMS = GenerationParams(max_new_tokens=8)


# The tiny model's greedy choice is a newline, again and again: sampled rows with a seed make varied text.
VARIED = Decoding(temperature=1.0, seed=11)


def run(engine, decodings, prompts=PROMPTS, **kwargs):
    return engine.generate_batch(prompts, PARAMS, decodings=decodings, **kwargs).generations


def tokens(engine, decodings, prompts=PROMPTS) -> list[list[int]]:
    """Each row's new tokens, as the step hook handed them over."""
    steps = []
    run(engine, decodings, prompts, on_step=steps.append)
    return [[step[row] for step in steps if step[row] is not None] for row in range(len(prompts))]


def test_a_sampled_row_does_not_change_its_greedy_batch_mate(tiny_model):
    greedy = run(tiny_model, None)
    mixed = run(tiny_model, [GREEDY, Decoding(temperature=1.5, seed=1)])
    assert mixed[0] == greedy[0]
    assert all(g.finish_reason == "length" and g.new_tokens == 8 for g in greedy)  # random weights: no end token


def test_a_seed_draws_the_same_tokens_in_any_batch_and_another_seed_others(tiny_model):
    seeded = Decoding(temperature=2.0, seed=7)
    alone = run(tiny_model, [seeded], prompts=PROMPTS[:1])[0]
    in_batch = run(tiny_model, [seeded, GREEDY])[0]
    assert in_batch.text == alone.text
    others = {run(tiny_model, [Decoding(temperature=2.0, seed=seed)], prompts=PROMPTS[:1])[0].text for seed in range(4)}
    assert len(others) > 1
    assert alone.text != run(tiny_model, [GREEDY], prompts=PROMPTS[:1])[0].text


def test_top_p_near_zero_keeps_only_the_most_likely_token(tiny_model):
    nucleus = tokens(tiny_model, [Decoding(temperature=1.0, top_p=1e-6, seed=3)] * 2)
    assert nucleus == tokens(tiny_model, [GREEDY] * 2)
    assert tokens(tiny_model, [Decoding(temperature=1.0, top_p=0.9, seed=3)] * 2) != nucleus


def test_a_stop_string_ends_its_row_only_and_is_cut_from_the_output(tiny_model):
    varied = run(tiny_model, [VARIED, VARIED])
    words = varied[0].text.split()
    stop = words[len(words) // 2]
    stopped = run(tiny_model, [Decoding(temperature=1.0, seed=11, stop=(stop,)), VARIED])
    assert stopped[0].text == final_text(varied[0].text, (stop,))[0] and stop not in stopped[0].text
    assert stopped[0].finish_reason == "stop" and stopped[0].new_tokens < varied[0].new_tokens
    assert stopped[1] == varied[1]


def test_a_raw_prompt_is_read_without_the_chat_template(tiny_model):
    raw = run(tiny_model, [Decoding(raw=True)], prompts=PROMPTS[:1])[0]
    assert raw.prompt_tokens == tiny_model.count_tokens(PROMPTS[0], raw=True) < tiny_model.count_tokens(PROMPTS[0])


def test_each_step_hands_over_every_row_new_token_and_they_make_the_output(tiny_model):
    steps = []
    stop = run(tiny_model, [VARIED, VARIED])[1].text.split()[1]
    decodings = [VARIED, Decoding(temperature=1.0, seed=11, stop=(stop,))]
    output = run(tiny_model, decodings, on_step=steps.append)
    assert len(steps) == 8 and all(len(step) == 2 for step in steps)
    first = [step[0] for step in steps]
    assert tiny_model.decode(first).strip() == output[0].text != ""
    second = [token for step in steps if (token := step[1]) is not None]
    assert len(second) == output[1].new_tokens < 8  # nothing after its stop string
    assert final_text(tiny_model.decode(second), (stop,))[0] == output[1].text


def test_in_steps_the_decodings_give_what_one_call_gives(tiny_model):
    stop = run(tiny_model, [VARIED, VARIED])[1].text.split()[1]
    decodings = [Decoding(temperature=1.2, seed=5), Decoding(temperature=1.0, seed=11, stop=(stop,))]
    pause = lambda: True  # noqa: E731 (every step pauses)
    stepped, _ = run_in_steps(tiny_model, PROMPTS, PARAMS, decodings=decodings, chunk_tokens=4, pause_wanted=pause)
    assert stepped.generations == run(tiny_model, decodings)


def test_a_row_ends_at_every_end_of_text_id_the_generation_config_names(tiny_model):
    """Some models end at several ids (Llama 3's <|eot_id|> beside <|end_of_text|>): an end id that only the
    generation config names ends the row too, in one call and in steps, and is not counted as output."""
    from inference.runtime import TransformersEngine

    newline = tiny_model.tokenizer("\n", add_special_tokens=False).input_ids[0]  # the tiny model's greedy choice
    config = tiny_model.model.generation_config
    original = config.eos_token_id
    config.eos_token_id = [tiny_model.tokenizer.eos_token_id, newline]
    try:
        engine = TransformersEngine(tiny_model.model, tiny_model.tokenizer, identity=tiny_model.identity)
        [once] = engine.generate_batch(PROMPTS[:1], PARAMS).generations
        [stepped] = run_in_steps(engine, PROMPTS[:1], PARAMS, chunk_tokens=4)[0].generations
    finally:
        config.eos_token_id = original
    assert once == stepped and (once.new_tokens, once.finish_reason) == (0, "stop")


def test_a_draw_follows_the_distribution_its_temperature_and_top_p_leave():
    scores = torch.log(torch.tensor([0.5, 0.3, 0.15, 0.05]))
    generator = torch.Generator().manual_seed(0)
    counts = Counter(draw(scores, Decoding(temperature=1.0, seed=0), generator) for _ in range(4000))
    assert abs(counts[0] / 4000 - 0.5) < 0.03 and abs(counts[3] / 4000 - 0.05) < 0.015
    nucleus = Counter(draw(scores, Decoding(temperature=1.0, top_p=0.7), generator) for _ in range(2000))
    assert set(nucleus) == {0, 1}  # 0.5 + 0.3 reaches 0.7: the rest is cut
    # A flat distribution's nucleus is wider than the candidates looked at first: the whole vocabulary counts.
    flat = torch.zeros(4 * NUCLEUS_CANDIDATES)
    wide = {draw(flat, Decoding(temperature=1.0, top_p=0.9), generator) for _ in range(3000)}
    assert max(wide) >= NUCLEUS_CANDIDATES and len(wide) > NUCLEUS_CANDIDATES


def sorted_draw(scores: torch.Tensor, decoding: Decoding, generator: torch.Generator) -> int:
    """draw's definition, with the whole vocabulary sorted every time."""
    probs = torch.softmax(scores.double() / decoding.temperature, dim=-1)
    key = int(torch.randint(0, 2**62, (), generator=generator))
    kept, tokens = torch.sort(probs, descending=True)
    inside = kept.cumsum(-1) - kept <= decoding.top_p
    kept, tokens = kept[inside], tokens[inside]
    return int(tokens[int(torch.argmax(kept / -torch.log(token_uniforms(key, tokens))))])


def test_a_draw_looks_at_few_tokens_first_and_draws_what_a_sort_of_all_of_them_would():
    """The nucleus is looked for among the 256 most likely tokens, then the 4096, then all: the same token (scores
    without ties: tokens of equal probability at the nucleus' edge may be taken in another order)."""
    vocabulary = 4 * WIDER_CANDIDATES
    decoding = Decoding(temperature=1.0, top_p=0.9)
    tiers = {8.0: (1, NUCLEUS_CANDIDATES), 2.0: (NUCLEUS_CANDIDATES, WIDER_CANDIDATES), 0.5: (WIDER_CANDIDATES, None)}
    for spread in (8.0, 2.0, 0.5, 0.0):  # peaked (256 hold the nucleus), wider (4096 do), flat (only all do)
        scores = torch.randn(vocabulary, generator=torch.Generator().manual_seed(3)) * spread
        probs = torch.softmax(scores.double(), -1).sort(descending=True).values
        needed = int((probs.cumsum(-1) < decoding.top_p).sum()) + 1
        low, high = tiers.get(spread, (WIDER_CANDIDATES, None))
        assert low <= needed and (high is None or needed <= high), (spread, needed)  # each way is taken
        ours, theirs = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
        drawn = [draw(scores, decoding, ours) for _ in range(200)]
        assert drawn == [sorted_draw(scores, decoding, theirs) for _ in range(200)], (spread, needed)
        assert len(set(drawn)) > 1
    assert draw(torch.full((8,), float("nan")), decoding, ours) is None  # too far apart: the caller is greedy


def test_rows_drawn_together_draw_what_each_would_alone():
    """One softmax and one topk for all the sampled rows of a step: each row still draws its own token, from its
    own temperature, top-p and generator, whichever way its nucleus is found."""
    vocabulary = 4 * WIDER_CANDIDATES
    spreads = (8.0, 2.0, 0.5, 8.0, 2.0, 4.0)  # peaked, wider, flat: each way of finding the nucleus
    settings = ((1.0, 0.9), (0.8, 0.95), (1.0, 0.9), (0.5, 1.0), (1.3, 0.5), (0.7, 0.9))  # temperature, top-p
    decodings = [Decoding(temperature=temperature, top_p=top_p) for temperature, top_p in settings]
    for step in range(30):
        noise = torch.Generator().manual_seed(step)
        scores = torch.stack([torch.randn(vocabulary, generator=noise) * spread for spread in spreads])
        scores[5, 7] = float("nan")  # too far apart: greedy, and no draw from its generator
        together = [torch.Generator().manual_seed(row) for row in range(len(spreads))]
        alone = [torch.Generator().manual_seed(row) for row in range(len(spreads))]
        drawn = draw_rows(scores, decodings, together)
        assert drawn == [draw(scores[row], decodings[row], alone[row]) for row in range(len(spreads))]
        assert drawn[:5] == [sorted_draw(scores[row], decodings[row], torch.Generator().manual_seed(row))
                             for row in range(5)]  # fmt: skip
        assert drawn[5] is None and together[5].get_state().equal(torch.Generator().manual_seed(5).get_state())


def test_a_sampled_row_that_has_ended_draws_no_more(tiny_model, monkeypatch):
    import inference.runtime

    drawn = Counter()

    def counting(scores, decodings, generators):
        drawn.update(decoding.seed for decoding in decodings)
        return draw_rows(scores, decodings, generators)

    monkeypatch.setattr(inference.runtime, "draw_rows", counting)
    rows = run(tiny_model, [Decoding(temperature=1.0, seed=1), Decoding(temperature=1.0, seed=2)],
               max_new_tokens_each=[2, 8])  # fmt: skip
    assert [row.new_tokens for row in rows] == [2, 8] and drawn == {1: 2, 2: 8}


def test_rows_that_share_a_prompt_are_prefilled_once_and_answer_as_if_each_had_its_own(tiny_model, monkeypatch):
    prompts = [PROMPTS[0], PROMPTS[1], PROMPTS[0], PROMPTS[0]]
    decodings = [GREEDY, GREEDY, Decoding(temperature=0.8, top_p=0.95, seed=1), Decoding(no_repeat_ngram=2)]
    encoded = tiny_model._encode(prompts, None, decodings)
    cache = tiny_model._cache_for(encoded, 8)
    assert cache.get_seq_length() == encoded.input_ids.shape[1] - 1
    assert cache.layers[0].keys.shape[0] == 4  # the first prompt's rows copied to its three rows
    assert tiny_model._cache_for(tiny_model._encode(PROMPTS, None, [GREEDY, GREEDY]), 8).get_seq_length() == 0
    shared = tiny_model.generate_batch(prompts, PARAMS, decodings=decodings).generations
    monkeypatch.setattr(tiny_model, "_shared_prefill", lambda encoded, cache: cache)
    assert tiny_model.generate_batch(prompts, PARAMS, decodings=decodings).generations == shared


def test_a_prompt_that_starts_with_the_padding_token_is_not_shared_with_a_padded_one(tiny_model):
    eos = tiny_model.tokenizer.eos_token
    raw = Decoding(raw=True)
    encoded = tiny_model._encode([f"{eos}Hello there", "Hello there"], None, [raw, raw])
    assert encoded.input_ids[0].tolist() == encoded.input_ids[1].tolist()  # the same ids, other masks
    assert tiny_model._cache_for(encoded, 8).get_seq_length() == 0  # nothing prefilled: no row shares
