"""The engine seam: the transformers engine keeps the Engine interface, says what it runs, and refuses a
device it cannot run on. A second engine must pass these tests too."""

import shutil

import pytest

from inference.engine import Engine, EngineIdentity
from inference.generation import GenerationParams
from inference.model_files import ModelConfigError, model_revision
from inference.runtime import load_engine
from tests.inference.stepping import run_in_steps


def test_the_transformers_engine_keeps_the_engine_interface(tiny_model):
    assert isinstance(tiny_model, Engine)


def test_an_engine_says_which_model_revision_dtype_and_device_it_runs(tiny_model, tiny_model_path):
    identity = tiny_model.identity
    assert (identity.model, identity.dtype, identity.device, identity.engine) == (
        tiny_model_path.name, "float32", "cpu", "transformers",
    )  # fmt: skip
    assert identity.revision == model_revision(tiny_model_path) and len(identity.revision) == 12
    assert identity.device_class == "cpu"
    assert identity.fields()["device"] == "cpu"


def test_a_revision_changes_with_the_weights_and_not_with_the_folder(tiny_model_path, tmp_path):
    copy = shutil.copytree(tiny_model_path, tmp_path / "copy")
    assert model_revision(copy) == model_revision(tiny_model_path)
    with open(next(copy.glob("*.safetensors")), "ab") as weights:
        weights.write(b"\0")
    assert model_revision(copy) != model_revision(tiny_model_path)


def test_generating_in_steps_gives_the_outputs_of_one_batch(tiny_model):
    prompts = ["Camera C3 detected a dent.", "Translate: replace the worn belt on conveyor 2 " * 3]
    params = GenerationParams(max_new_tokens=5)
    stepped, _ = run_in_steps(tiny_model, prompts, params, chunk_tokens=8)
    assert stepped.generations == tiny_model.generate_batch(prompts, params).generations


def test_a_gpu_asked_for_on_a_machine_without_one_is_refused_before_loading(tiny_model_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(ModelConfigError, match="EDGE_DEVICE=cuda names a GPU this machine does not have"):
        load_engine(str(tiny_model_path), device="cuda")


def test_on_a_cpu_auto_means_the_cpu_in_float32(tiny_model_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    engine = load_engine(str(tiny_model_path), device="auto")
    assert engine.identity == EngineIdentity(
        model=tiny_model_path.name, revision=model_revision(tiny_model_path), dtype="float32", device="cpu"
    )
    assert engine.model.dtype == torch.float32
