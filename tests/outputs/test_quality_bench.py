"""bench/quality.py's measurement on a CI-sized sample: the tiny model, 4 requests, 8 new tokens."""

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _bench_module():
    spec = importlib.util.spec_from_file_location("quality_bench", ROOT / "bench" / "quality.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up while they are made
    spec.loader.exec_module(module)
    return module


quality_bench = _bench_module()
ROWS = 4


@pytest.fixture(scope="module")
def report(tiny_model):
    rows = quality_bench.labelled_set(ROWS)
    return quality_bench.measure(tiny_model, rows, max_new_tokens=8, warm_up=False)


def test_every_setting_is_measured_in_order(report):
    assert list(report) == [setting.name for setting in quality_bench.SETTINGS]


def test_every_setting_judges_every_row_once(report):
    asked = [row["id"] for row in quality_bench.labelled_set(ROWS)]
    for figures in report.values():
        assert figures["rows"] == ROWS
        assert [answer["id"] for answer in figures["answers"]] == asked


def test_counts_and_shares_stay_within_their_bounds(report):
    for figures in report.values():
        assert 0 <= figures["loops"] <= ROWS
        assert 0 <= figures["empty"] + figures["truncated"] <= ROWS
        assert 0.0 <= figures["echo_rows"] <= 1.0
        assert 0.0 <= figures["echo_items"] <= 1.0
        assert 0.0 <= figures["language_met_all"] <= 1.0
        assert set(figures["language_met"]) <= set(quality_bench.LANGUAGES)
        assert figures["batch_ms"] > 0 and figures["tokens_per_s"] >= 0


def test_an_empty_answer_meets_no_language_and_echoes_nothing(report):
    for figures in report.values():
        for answer in figures["answers"]:
            if answer["flaw"] == "empty":
                assert not answer["language_met"] and answer["echoed"] == 0


def test_greedy_is_its_own_yardstick(report):
    assert report["greedy"]["jobs_vs_first"] == pytest.approx(1.0)
    assert report["greedy"]["tokens_vs_first"] == pytest.approx(1.0)


def test_the_tiny_model_loops_on_newlines_under_greedy_and_repeat_control_ends_it(report):
    """The tiny model's greedy answer is the same newline again and again: blank once stripped (an empty answer,
    not a loop of words). Banning repeated n-grams in its output makes it write something."""
    assert report["greedy"]["empty"] == ROWS
    assert report["ngram4"]["empty"] < ROWS
    assert report["ngram3"]["empty"] < ROWS


def test_the_table_has_a_line_per_setting(report):
    lines = quality_bench.table(report).splitlines()
    assert len(lines) == 2 + len(report)
    assert all(line.startswith(f"| {name} |") for line, name in zip(lines[2:], report, strict=True))


def test_the_settings_that_run_the_engine_as_before_answer_as_now(report):
    """Each `as_before` row turns off a change that must not change an answer (a shared prefill, draws together):
    its answers are those of the row it is measured against."""
    texts = {name: [answer["text"] for answer in figures["answers"]] for name, figures in report.items()}
    assert texts["4 candidates, prefill each"] == texts["4 candidates"]
    assert texts["4 candidates, draws one by one"] == texts["4 candidates"]


def test_as_before_restores_the_engine_it_changed(tiny_model):
    from inference import runtime

    together = runtime.draw_rows
    setting = next(s for s in quality_bench.SETTINGS if not s.draws_together)
    with quality_bench.as_before(tiny_model, setting):
        assert runtime.draw_rows is quality_bench.draws_one_by_one
    assert runtime.draw_rows is together


def test_only_picks_whole_names_or_names_holding_a_text_beside_greedy():
    names = [s.name for s in quality_bench.chosen(quality_bench.SETTINGS, "=4 candidates|bias 3")]
    assert names == ["greedy", "4 candidates", "copy bias 3", "copy bias 3, 4 candidates"]
    assert "copy bias 3, 4 candidates" in [s.name for s in quality_bench.chosen(quality_bench.SETTINGS, "4 candidates")]
    assert quality_bench.chosen(quality_bench.SETTINGS, None) == list(quality_bench.SETTINGS)
