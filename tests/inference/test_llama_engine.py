"""The llama.cpp engine on the tiny model, beside the transformers reference: the same interface, the same
outputs (greedy, seeded samples, stop strings, steps with pauses), and the choice of engine at start."""

import logging
import os
from pathlib import Path

import pytest
import torch

from inference.decoding import Decoding
from inference.engine import Engine
from inference.generation import GenerationParams
from inference.llama_engine import available
from tests.inference.stepping import run_in_steps

pytestmark = pytest.mark.skipif(available() is not None, reason=f"llama.cpp engine: {available()}")

PROMPTS = ["Camera C3 detected a dent.", "Translate this work order into English: replace the worn belt."]
PARAMS = GenerationParams(max_new_tokens=8)
VARIED = Decoding(temperature=1.0, seed=11)  # the tiny model's greedy answer is only newlines


@pytest.fixture(scope="session")
def tiny_llama(tiny_model_path):
    from inference.llama_engine import load_llama_engine
    from inference.model_files import model_revision

    return load_llama_engine(tiny_model_path, name=tiny_model_path.name, revision=model_revision(tiny_model_path))


def test_it_keeps_the_engine_interface_and_says_what_it_runs(tiny_llama, tiny_model_path):
    assert isinstance(tiny_llama, Engine)
    assert (tiny_llama.identity.engine, tiny_llama.identity.dtype, tiny_llama.identity.device) == (
        "llama.cpp", "float32", "cpu",
    )  # fmt: skip
    assert tiny_llama.context_length == 4096


# A worker started as the README's "worker per lane" starts it: its threads as OMP_NUM_THREADS says.
THREADS_OF_A_WORKER = """
from inference.llama_engine import load_llama_engine
from inference.model_files import model_revision
from tests.tiny_model import tiny_model_dir
folder = tiny_model_dir()
engine = load_llama_engine(folder, name=folder.name, revision=model_revision(folder))
context = engine._idle[0]
print(engine.lib.llama_n_threads(context), engine.lib.llama_n_threads_batch(context))
"""


def test_a_worker_runs_as_many_llama_threads_as_omp_num_threads_gives_torch(tiny_llama):
    """Two workers on a 2-core node with OMP_NUM_THREADS=1 each: llama.cpp took every core in each of them."""
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[2]
    threads = 1  # not every core: torch takes no more threads than there are cores
    if (os.cpu_count() or 1) == threads:
        pytest.skip("one core: a thread per core is one thread too")
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    done = subprocess.run([sys.executable, "-c", THREADS_OF_A_WORKER], cwd=root, env=env, capture_output=True,
                          text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == [str(threads)] * 2
    assert tiny_llama.threads == torch.get_num_threads()


def test_its_outputs_are_the_reference_engines(tiny_llama, tiny_model):
    stop = tiny_model.generate_batch(PROMPTS, PARAMS, decodings=[VARIED, VARIED]).generations[1].text.split()[1]
    for decodings in (
        None,
        [Decoding(temperature=0.7, top_p=0.9, seed=5), Decoding(temperature=1.0, seed=11, stop=(stop,))],
    ):
        ours = tiny_llama.generate_batch(PROMPTS, PARAMS, decodings=decodings, max_new_tokens_each=[3, 8])
        theirs = tiny_model.generate_batch(PROMPTS, PARAMS, decodings=decodings, max_new_tokens_each=[3, 8])
        assert ours.generations == theirs.generations
    assert ours.generations[1].finish_reason == "stop" and ours.generations[0].new_tokens == 3


def test_rows_with_a_json_schema_keep_it_as_on_the_reference_engine(tiny_llama, tiny_model):
    """llama.cpp constrains a schema row itself (the reference's masks on its own logits): no job is routed."""
    from tests.inference.test_json_output import AS_TICKET, keeps_ticket

    decodings = [AS_TICKET, Decoding(temperature=1.0, seed=3, json_schema=AS_TICKET.json_schema), VARIED]
    prompts = [*PROMPTS, "Camera C3 detected a scratch."]
    params = GenerationParams(max_new_tokens=160)
    ours = tiny_llama.generate_batch(prompts, params, decodings=decodings, max_new_tokens_each=[160, 160, 8])
    theirs = tiny_model.generate_batch(prompts, params, decodings=decodings, max_new_tokens_each=[160, 160, 8])
    assert ours.generations == theirs.generations
    assert keeps_ticket(ours.generations[0].text) and keeps_ticket(ours.generations[1].text)


def test_steps_with_pauses_give_what_one_call_gives_and_hand_over_each_token(tiny_llama):
    steps_seen = []
    stepped, yields = run_in_steps(tiny_llama, PROMPTS, PARAMS, decodings=[VARIED, VARIED], chunk_tokens=4,
                                   on_step=steps_seen.append, pause_wanted=lambda: True)  # fmt: skip
    assert stepped.generations == tiny_llama.generate_batch(PROMPTS, PARAMS, decodings=[VARIED, VARIED]).generations
    assert yields > 8  # prefill chunks, then a pause after each step
    assert tiny_llama.decode([step[0] for step in steps_seen]).strip() == stepped.generations[0].text


def test_rows_sharing_a_prompt_prefill_it_once_and_answer_as_the_reference(tiny_llama, tiny_model, monkeypatch):
    """A job's candidates share their prompt: its cache is computed once and copied to the other rows."""
    from inference.llama_engine import shared_prompts

    assert shared_prompts([[1, 2], [3], [1, 2], [1, 2, 2], [3]]) == [0, 1, 0, 3, 1]
    prompts = [PROMPTS[0], PROMPTS[1], PROMPTS[0], PROMPTS[0]]
    decodings = [Decoding(), VARIED, Decoding(temperature=0.8, seed=4), Decoding(temperature=1.0, seed=9)]
    prefilled = []
    decode = tiny_llama._decode

    def counting(context, batch, pieces):
        prefilled.extend(piece for piece in pieces if not piece[3])
        return decode(context, batch, pieces)

    monkeypatch.setattr(tiny_llama, "_decode", counting)
    ours = tiny_llama.generate_batch(prompts, PARAMS, decodings=decodings)
    prompt_tokens = [tiny_llama.token_ids(prompt, None) for prompt in PROMPTS]
    assert sorted({row for row, *_ in prefilled}) == [0, 1]  # rows 2 and 3 prefill nothing of their own
    assert len(prefilled) == sum(len(ids) - 1 for ids in prompt_tokens)
    assert ours.generations == tiny_model.generate_batch(prompts, PARAMS, decodings=decodings).generations
    for prompt, decoding, generation in zip(prompts, decodings, ours.generations, strict=True):
        assert tiny_llama.generate_batch([prompt], PARAMS, decodings=[decoding]).generations[0] == generation
    # In chunks, with pauses (a long batch's way): the copies are made once the shared prompt is in
    stepped, paused = run_in_steps(tiny_llama, prompts, PARAMS, decodings=decodings, chunk_tokens=4,
                                   pause_wanted=lambda: True)  # fmt: skip
    assert stepped.generations == ours.generations and paused > 2


def test_a_batch_that_does_not_fit_its_context_is_refused_before_it_runs(tiny_llama):
    with pytest.raises(ValueError, match="tokens of context"):
        tiny_llama.generate_batch(["word " * 600] * 30, GenerationParams(max_new_tokens=32))


def test_auto_takes_llama_cpp_when_it_keeps_the_reference_outputs_and_says_why(tiny_model_path, caplog):
    from inference.engine_choice import load_chosen_engine

    with caplog.at_level(logging.INFO, logger="inference.engine_choice"):
        engine = load_chosen_engine(str(tiny_model_path), "auto", device="cpu")
    assert (engine.identity.engine, engine.identity.dtype) == ("llama.cpp", "float16")  # tried first: faster
    assert "engine: llama.cpp, float16 weights (its greedy outputs match the transformers reference" in caplog.text
    reference = load_chosen_engine(str(tiny_model_path), "auto", device="cpu", dtype="bfloat16")
    assert reference.identity.engine == "transformers"


def test_an_engine_that_cannot_run_or_an_unknown_one_stops_with_why(tiny_model_path):
    from inference.engine_choice import load_chosen_engine
    from inference.model_files import ModelConfigError

    with pytest.raises(ModelConfigError, match=r"llama\.cpp is built for the CPU"):
        load_chosen_engine(str(tiny_model_path), "llama.cpp", device="cuda")
    with pytest.raises(ModelConfigError, match=r"EDGE_ENGINE must be one of auto, transformers, llama\.cpp"):
        load_chosen_engine(str(tiny_model_path), "vllm")


def test_a_batch_run_while_another_pauses_changes_neither(tiny_llama):
    """As the worker does: a short batch runs while a long one stands aside. Each has its own context (KV
    cache and logits), so the long one resumes where it was."""
    alone = tiny_llama.generate_batch(PROMPTS, PARAMS, decodings=[VARIED, VARIED]).generations
    short = ["Short note.", "Another one."]
    short_alone = tiny_llama.generate_batch(short, GenerationParams(max_new_tokens=3), decodings=[VARIED, VARIED])
    between = []
    stepped, _ = run_in_steps(
        tiny_llama, PROMPTS, PARAMS, decodings=[VARIED, VARIED], chunk_tokens=4, pause_wanted=lambda: True,
        between=lambda: between.append(tiny_llama.generate_batch(short, GenerationParams(max_new_tokens=3),
                                                                 decodings=[VARIED, VARIED])),
    )  # fmt: skip
    assert stepped.generations == alone
    assert len(between) > 8 and all(b.generations == short_alone.generations for b in between)


def differing_in(monkeypatch, *dtypes):
    """The check as it is, except that llama.cpp engines in these weights count as differing on one prompt."""
    from inference import engine_choice

    check = engine_choice.outputs_differing

    def differing(reference, fast):
        return 1 if fast.identity.dtype in dtypes else check(reference, fast)

    monkeypatch.setattr(engine_choice, "outputs_differing", differing)


def test_auto_takes_float32_weights_when_float16_changes_an_output_and_the_reference_when_both_do(
    tiny_model_path, monkeypatch, caplog
):
    from inference.engine_choice import load_chosen_engine

    differing_in(monkeypatch, "float16")
    with caplog.at_level(logging.INFO, logger="inference.engine_choice"):
        engine = load_chosen_engine(str(tiny_model_path), "auto", device="cpu")
    assert (engine.identity.engine, engine.identity.dtype) == ("llama.cpp", "float32")
    assert "engine: llama.cpp, float32 weights (its greedy outputs match" in caplog.text
    assert "float16 weights differ from the reference's greedy outputs on 1 of 3 check prompts" in caplog.text
    caplog.clear()
    differing_in(monkeypatch, "float16", "float32")
    with caplog.at_level(logging.INFO, logger="inference.engine_choice"):
        engine = load_chosen_engine(str(tiny_model_path), "auto", device="cpu")
    assert engine.identity.engine == "transformers"
    assert "float16 weights differ from" in caplog.text and "float32 weights differ from" in caplog.text


def test_auto_takes_float32_weights_when_float16_cannot_be_written_or_loaded(tiny_model_path, monkeypatch, caplog):
    """A disk that fills while the float16 file is written must not drop the node to the slower reference."""
    from inference import engine_choice

    load = engine_choice._load_llama

    def float32_only(spec, name, cache_root, weights):
        if weights == "float16":
            raise OSError("No space left on device")
        return load(spec, name, cache_root, weights)

    monkeypatch.setattr(engine_choice, "_load_llama", float32_only)
    with caplog.at_level(logging.INFO, logger="inference.engine_choice"):
        engine = engine_choice.load_chosen_engine(str(tiny_model_path), "auto", device="cpu")
    assert (engine.identity.engine, engine.identity.dtype) == ("llama.cpp", "float32")
    assert "could not run this model on float16 weights: No space left on device" in caplog.text


def test_llama_weights_named_are_the_only_ones_tried_and_llama_cpp_asked_for_runs_float32(tiny_model_path, monkeypatch):
    from inference.engine_choice import load_chosen_engine

    assert load_chosen_engine(str(tiny_model_path), "auto", device="cpu", llama_weights="float32").identity.dtype == (
        "float32"
    )
    differing_in(monkeypatch, "float32")
    assert load_chosen_engine(str(tiny_model_path), "auto", device="cpu", llama_weights="float32").identity.engine == (
        "transformers"
    )
    # Without the reference to check against, EDGE_ENGINE=llama.cpp keeps the reference's own weights unless told
    assert load_chosen_engine(str(tiny_model_path), "llama.cpp").identity.dtype == "float32"
    assert load_chosen_engine(str(tiny_model_path), "llama.cpp", llama_weights=" Float16 ").identity.dtype == (
        "float16"
    )


def test_llama_weights_of_another_kind_stop_the_worker_and_the_web_with_why(tiny_model_path):
    import subprocess
    import sys

    from inference.engine_choice import load_chosen_engine
    from inference.model_files import ModelConfigError

    with pytest.raises(ModelConfigError, match="EDGE_LLAMA_WEIGHTS must be one of auto, float16, float32, got 'q4'"):
        load_chosen_engine(str(tiny_model_path), "auto", llama_weights="q4")
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "EDGE_LLAMA_WEIGHTS": "int8"}
    web = subprocess.run([sys.executable, "manage.py", "check"], cwd=root, env=env, capture_output=True, text=True)
    assert web.returncode != 0
    assert "EDGE_LLAMA_WEIGHTS must be one of auto, float16, float32, got 'int8'" in web.stderr


def test_float16_weights_are_written_once_in_half_the_bytes_and_run_the_same_steps(tiny_model_path, tmp_path):
    """The converter's float16 file: its matrices in F16, about half the float32 file; an engine on it keeps
    the seam (steps with pauses give the batch's outputs, token counts exact)."""
    import gguf

    from inference.llama_engine import gguf_of, load_llama_engine
    from inference.model_files import model_revision

    revision = model_revision(tiny_model_path)
    half, full = (gguf_of(tiny_model_path, revision, tmp_path, dtype) for dtype in ("float16", "float32"))
    assert half.name.endswith("-f16.gguf") and full.name.endswith("-f32.gguf")
    written = half.stat().st_mtime_ns
    assert gguf_of(tiny_model_path, revision, tmp_path, "float16") == half and half.stat().st_mtime_ns == written
    matrices = [t for t in gguf.GGUFReader(half).tensors if len(t.shape) == 2]
    assert matrices and {t.tensor_type.name for t in matrices} == {"F16"}
    assert 0.45 < half.stat().st_size / full.stat().st_size < 0.6
    engine = load_llama_engine(tiny_model_path, name="tiny", revision=revision, cache_root=tmp_path, dtype="float16")
    try:
        assert (engine.identity.engine, engine.identity.dtype) == ("llama.cpp", "float16")
        batch = engine.generate_batch(PROMPTS, PARAMS, decodings=[VARIED, VARIED])
        stepped, paused = run_in_steps(engine, PROMPTS, PARAMS, decodings=[VARIED, VARIED], chunk_tokens=4,
                                       pause_wanted=lambda: True)  # fmt: skip
        assert stepped.generations == batch.generations and paused > 2
        assert [g.prompt_tokens for g in batch.generations] == [len(engine.token_ids(p, None)) for p in PROMPTS]
    finally:
        engine.close()


def test_auto_falls_back_to_the_reference_when_llama_cpp_cannot_load_the_model(tiny_model_path, monkeypatch, caplog):
    from inference import engine_choice

    def broken(*args):
        raise ValueError("an architecture the converter does not know")

    monkeypatch.setattr(engine_choice, "_load_llama", broken)
    with caplog.at_level(logging.WARNING, logger="inference.engine_choice"):
        engine = engine_choice.load_chosen_engine(str(tiny_model_path), "auto", device="cpu")
    assert engine.identity.engine == "transformers" and "could not run this model" in caplog.text


def test_the_llama_engine_controls_repeats_as_the_reference_does(tiny_llama, tiny_model):
    from tests.inference.test_repetition import NO_REPEAT

    decodings = [NO_REPEAT, Decoding(repetition_penalty=1.3, no_repeat_ngram=3)]
    ours = tiny_llama.generate_batch(PROMPTS, PARAMS, decodings=decodings).generations
    theirs = tiny_model.generate_batch(PROMPTS, PARAMS, decodings=decodings).generations
    assert ours == theirs
    assert ours != tiny_model.generate_batch(PROMPTS, PARAMS).generations


@pytest.mark.parametrize("short_between", [True, False])
def test_a_worker_serving_both_lanes_makes_its_second_context_while_it_warms_up(tiny_model_path, short_between):
    """A context costs 0.8 s to make with the default model: the first short batch that came between a long
    one's chunks paid it, in the middle of a request's latency."""
    from inference.llama_engine import load_llama_engine
    from inference.model_files import model_revision
    from inference.warm_up import measure_baseline

    engine = load_llama_engine(tiny_model_path, name=tiny_model_path.name, revision=model_revision(tiny_model_path))
    try:
        baseline = measure_baseline(engine, max_batch_size=2, new_tokens=4, chunk_tokens=16,
                                    short_between=short_between)  # fmt: skip
        # measured (a full batch's step time; base_ms:short, a difference of two timings, may be clipped to 0 here)
        assert float(baseline["base_step_ms:short"]) > 0 and float(baseline["base_step_ms:long"]) > 0
        assert len(engine._contexts) == (2 if short_between else 1)
        made = len(engine._contexts)
        steps = engine.generate_in_steps(PROMPTS, PARAMS, chunk_tokens=4, pause_wanted=lambda: True)
        next(steps)
        engine.generate_batch(["Short note."], GenerationParams(max_new_tokens=2))  # as the worker runs one
        assert len(engine._contexts) == 2 and (made == 2) == short_between
    finally:
        engine.close()
