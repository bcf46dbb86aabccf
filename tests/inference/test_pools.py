"""Pools and the catalog of models a node serves: names, EDGE_MODELS, and the errors a plant sees."""

import pytest

from inference.model_files import ModelConfigError
from inference.pools import DEFAULT_MODEL_NAME, ModelCatalog, Pool, engine_conflict, model_name_of, parse_models


def test_a_pool_is_a_model_on_a_class_of_device_under_the_installations_prefix():
    pool = Pool("qwen2.5-0.5b", "cuda")
    assert pool.name == "qwen2.5-0.5b@cuda"
    assert pool.prefix("edgeportal") == "edgeportal:pool:qwen2.5-0.5b@cuda"
    assert Pool.from_name(pool.name) == pool
    assert Pool("smol").name == "smol@cpu"


@pytest.mark.parametrize("name", ["smol", "smol@gpu", "@cpu", "bad name@cpu", "a@b@cpu"])
def test_a_name_that_is_not_a_pools_is_refused(name):
    with pytest.raises(ValueError, match="not a pool name"):
        Pool.from_name(name)


def test_a_models_name_is_its_folders_or_its_gguf_files():
    assert model_name_of(None) == DEFAULT_MODEL_NAME
    assert model_name_of("/models/qwen2.5-0.5b-instruct") == "qwen2.5-0.5b-instruct"
    assert model_name_of("/models/smollm2-q8_0.gguf") == "smollm2-q8_0"


def test_the_catalog_holds_the_default_model_and_the_others_by_name():
    catalog = ModelCatalog.from_env("", "qwen=/models/qwen, llama = /models/llama\n")
    assert catalog.default == DEFAULT_MODEL_NAME and catalog.spec_of(DEFAULT_MODEL_NAME) == ""
    assert catalog.names == [DEFAULT_MODEL_NAME, "llama", "qwen"]
    assert catalog.spec_of("llama") == "/models/llama" and catalog.knows("qwen") and not catalog.knows("gpt-4")
    assert catalog.default_pool() == Pool(DEFAULT_MODEL_NAME, "cpu")


def test_edge_model_may_name_one_of_edge_models():
    catalog = ModelCatalog.from_env("qwen", "qwen=/models/qwen")
    assert (catalog.default, catalog.names) == ("qwen", ["qwen"])
    by_path = ModelCatalog.from_env("/models/smol", "qwen=/models/qwen")
    assert by_path.default == "smol" and by_path.spec_of("smol") == "/models/smol"


@pytest.mark.parametrize(
    ("model", "models", "message"),
    [
        ("", "qwen", "'qwen' is not name=path"),
        ("", "qwen=", "'qwen=' is not name=path"),
        ("", "my model=/m", "'my model' is not a model name"),
        ("", "a=/x,a=/y", "names 'a' twice"),
        ("/models/a", "a=/models/b", "EDGE_MODEL='/models/a' and EDGE_MODELS both name a model 'a'"),
        ("/models/bad name", "", "gives the model name 'bad name'; name it in EDGE_MODELS"),
    ],
)
def test_a_bad_catalog_is_a_clear_error(model, models, message):
    with pytest.raises(ModelConfigError, match=message):
        ModelCatalog.from_env(model, models)


def test_parse_models_of_nothing_is_nothing():
    assert parse_models("") == {} and parse_models(" , \n") == {}


def registered(name: str, engine: str | None, heartbeat_at: float, dtype: str = "") -> dict[str, str]:
    """A worker as JobQueue.workers() lists it (its hash has no engine once it expired)."""
    fields = {"name": name, "heartbeat_at": str(heartbeat_at), **({"engine": engine} if engine else {})}
    return fields | ({"dtype": dtype} if dtype else {})


def test_a_worker_on_other_weights_than_its_pools_live_workers_may_not_serve_it():
    """llama.cpp on float16 weights answers one request about 1.5 times as fast as on float32: one estimate
    would fit neither."""
    workers = [registered("w1@node", "llama.cpp", 100.0, dtype="float16")]
    why = engine_conflict("m@cpu", "llama.cpp", workers, me="w2@node", now=105.0, alive_s=6, dtype="float32")
    assert "w1@node" in why and "EDGE_ENGINE=llama.cpp EDGE_LLAMA_WEIGHTS=float16" in why and "runs float32" in why
    assert engine_conflict("m@cpu", "llama.cpp", workers, me="w2@node", now=105.0, alive_s=6, dtype="float16") is None
    # transformers workers on GPUs of a pool may differ (bfloat16 where the GPU has it, else float16), as before
    gpu = [registered("w1@gpu", "transformers", 100.0, dtype="bfloat16")]
    assert engine_conflict("m@cuda", "transformers", gpu, me="w2@gpu", now=105.0, alive_s=6, dtype="float16") is None


def test_a_worker_on_another_engine_than_its_pools_live_workers_may_not_serve_it():
    workers = [registered("w1@node", "llama.cpp", 100.0)]
    why = engine_conflict("m@cpu", "transformers", workers, me="w2@node", now=105.0, alive_s=6)
    assert "w1@node" in why and "EDGE_ENGINE=llama.cpp" in why and "m@cpu" in why


@pytest.mark.parametrize(
    "other",
    [
        registered("w1@node", "transformers", 100.0),  # the same engine
        registered("w1@node", "llama.cpp", 93.0),  # silent for more than alive_s: gone
        registered("w2@node", "llama.cpp", 100.0),  # this worker itself, before its restart
        registered("w1@node", None, 100.0),  # its hash expired: nothing known of it
    ],
)
def test_only_a_live_other_worker_on_another_engine_stands_in_the_way(other):
    assert engine_conflict("m@cpu", "transformers", [other], me="w2@node", now=100.0, alive_s=6) is None
