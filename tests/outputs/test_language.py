import json
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from edgeportal.outputs import language
from edgeportal.outputs.language import detect_language, language_matches, language_name

SAMPLES = [
    json.loads(line) for line in (Path(__file__).parent / "language_samples.jsonl").read_text().splitlines() if line
]


def test_the_labelled_set_holds_20_short_factory_texts_per_language():
    assert Counter(sample["language"] for sample in SAMPLES) == {"zh": 20, "en": 20, "es": 20}
    for sample in SAMPLES:
        size = len(sample["text"]) / 2 if sample["language"] == "zh" else len(sample["text"].split())
        assert 5 <= size <= 40, sample["text"]
    assert sum(any(char.isdigit() for char in sample["text"]) for sample in SAMPLES) >= 50  # ids, numbers, units


def test_it_detects_the_language_of_the_labelled_texts():
    # Measured 60/60 (bench/languages.py); a margin of one text.
    found = [(sample["language"], detect_language(sample["text"])) for sample in SAMPLES]
    assert sum(wanted == detected for wanted, detected in found) / len(found) >= 0.98
    for label in ("zh", "en", "es"):
        assert sum(detected == label for wanted, detected in found if wanted == label) >= 19, label


def test_each_labelled_text_matches_its_language_and_not_the_two_others():
    # Measured 180/180 pairs; a margin of two.
    right = sum(
        language_matches(sample["text"], wanted)[0] == (wanted == sample["language"])
        for sample in SAMPLES
        for wanted in ("zh", "en", "es")
    )
    assert right >= 178


@pytest.mark.parametrize("wanted", ["zh", "zh-Hans", "zh-hans", "ZH", "zh_CN", "zh-Hant-TW", " zh "])
def test_the_language_asked_for_is_compared_by_its_primary_subtag(wanted):
    assert language_matches("3号线停机：C3输送带卡料，预计15分钟后恢复。", wanted) == (True, "zh")


@pytest.mark.parametrize("wanted", ["en-US", "en-GB", "EN"])
def test_regional_english_is_english(wanted):
    assert language_matches("Line A restarts in 10 minutes. Keep hands clear of the press.", wanted) == (True, "en")


@pytest.mark.parametrize(
    "text", ["P3", "AGV-B2 -> C3", "4471-B", "12:30", "182 °C", "42 s / 51 s", "WO-20931", "", "—"]
)
@pytest.mark.parametrize("wanted", ["zh-Hans", "en", "es"])
def test_a_text_without_words_matches_any_language(text, wanted):
    assert language_matches(text, wanted) == (True, None)
    assert detect_language(text) is None


def test_ids_and_units_in_a_text_do_not_change_its_language():
    assert detect_language("AGV-B2在P3停车，WO-20931待处理，温度182 °C。") == "zh"
    assert detect_language("The AGV-B2 waits at P3 for order WO-20931 while the oven heats to 182 °C.") == "en"
    assert detect_language("El AGV-B2 espera en P3 la orden WO-20931 mientras el horno llega a 182 °C.") == "es"
    assert language_matches("AGV-B2在P3停车，WO-20931待处理。", "en") == (False, "zh")


def test_a_short_text_full_of_ids_is_judged_by_its_words():
    # Read with its ids, lingua found it Dutch before English; without them English is in the running.
    text = "AGV-B2 waits at P3 for order WO-20931, oven at 182 °C."
    assert [language_matches(text, wanted)[0] for wanted in ("zh", "en", "es")] == [False, True, False]


@pytest.mark.parametrize(
    ("text", "right"),
    [("Keep hands clear", "en"), ("Line 3 stopped", "en"), ("Línea 3 parada", "es"), ("3号线停机", "zh")],
)
def test_a_three_word_notice_is_still_judged(text, right):
    for wanted in ("zh", "en", "es"):
        assert language_matches(text, wanted)[0] == (wanted == right), wanted


def test_a_short_text_lingua_cannot_name_still_matches_the_language_asked_for():
    # Lingua leans German here, English close behind: no language is named, and English is not ruled out.
    assert detect_language("Reset gripper R4") is None
    assert language_matches("Reset gripper R4", "en") == (True, None)
    assert language_matches("Reset gripper R4", "zh") == (False, None)
    assert language_matches("Reset gripper R4", "es") == (False, None)


def test_a_text_in_a_script_no_candidate_uses_matches_no_candidate():
    thai = "สายการผลิต 3 หยุดทำงาน"
    assert detect_language(thai) is None
    assert language_matches(thai, "en") == (False, None)


def test_a_language_the_detector_does_not_know_is_not_judged():
    assert language_matches("สายการผลิต 3 หยุดทำงาน", "th") == (True, None)
    notice = "Line A restarts in 10 minutes. Keep hands clear of the press."
    assert language_matches(notice, "fi") == (True, "en")
    assert language_matches(notice, "") == (True, "en")


def test_a_neighbouring_language_is_told_apart_in_a_sentence():
    assert language_matches("A linha 3 está parada, o reinício é previsto em 15 minutos.", "es") == (False, "pt")
    assert language_matches("ライン3が停止しました。", "zh") == (False, "ja")


@pytest.mark.parametrize(
    ("code", "name"),
    [
        ("zh", "Chinese"),
        ("en", "English"),
        ("es", "Spanish"),
        ("es-MX", "Spanish"),
        ("EN_us", "English"),
        ("zh-Hans", "Simplified Chinese"),
        ("zh-CN", "Simplified Chinese"),
        ("zh-Hant", "Traditional Chinese"),
        ("zh-TW", "Traditional Chinese"),
        ("pt-BR", "Portuguese"),
        ("xx", "xx"),
    ],
)
def test_language_name_is_the_english_name_for_an_instruction(code, name):
    assert language_name(code) == name


def test_the_detector_is_built_once_for_all_threads(monkeypatch):
    builds = []

    class SlowBuilder:
        @staticmethod
        def from_languages(*languages):
            return SlowBuilder()

        def with_preloaded_language_models(self):
            return self

        def build(self):
            time.sleep(0.05)  # long enough for the other threads to arrive while it builds
            builds.append(object())
            return builds[-1]

    monkeypatch.setattr(language, "_detector", None)
    monkeypatch.setattr(language, "LanguageDetectorBuilder", SlowBuilder)
    got = []
    threads = [threading.Thread(target=lambda: got.append(language.language_detector())) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(builds) == 1 and all(detector is builds[0] for detector in got)
