"""bench/semantic.py on its whole labelled set (one embedding call, seconds): a near-miss never matches at any
threshold, and the report reads as BENCHMARKS.md shows it."""

import importlib.util
import sys
from pathlib import Path

import pytest

from inference.embedder import default_embedder_path, load_embedder
from inference.model_files import ModelConfigError

ROOT = Path(__file__).resolve().parents[2]


def _bench_module():
    spec = importlib.util.spec_from_file_location("semantic_bench", ROOT / "bench" / "semantic.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


semantic_bench = _bench_module()


@pytest.fixture(scope="module")
def report():
    try:
        default_embedder_path()
    except ModelConfigError as error:
        pytest.skip(f"the default embedding model is not installed: {error}")
    return semantic_bench.measure(load_embedder(None), semantic_bench.labelled_pairs())


def test_a_near_miss_never_matches_at_any_threshold(report):
    assert report["counts"]["near_miss"] >= 12
    for threshold, figures in report["thresholds"].items():
        assert figures["guarded"]["near_miss"] == 0, threshold
    # the embedding alone would let some through: the guard is what keeps them apart
    assert max(figures["embedding_alone"]["near_miss"] for figures in report["thresholds"].values()) > 0


def test_the_threshold_trades_recall_for_precision(report):
    recalls = [figures["guarded"]["paraphrase"] for figures in report["thresholds"].values()]
    assert recalls == sorted(recalls, reverse=True) and recalls[0] > 0


def test_the_table_has_a_row_per_threshold_and_the_pairs_their_cosine(report):
    lines = semantic_bench.table(report).splitlines()
    assert len(lines) == 2 + len(semantic_bench.THRESHOLDS)
    assert all(-1.0 <= pair["similarity"] <= 1.01 for pair in report["pairs"])
