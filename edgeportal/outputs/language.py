"""Which language an output is written in, and whether it is the one its declaration asked for (lingua)."""

from __future__ import annotations

import re
import threading

from lingua import Language, LanguageDetector, LanguageDetectorBuilder

# The languages an output may be detected as: those asked for most in the plants, plus their usual confusions
# (pt and it next to es, nl and de next to en, ja next to zh), so a neighbour is named rather than mistaken.
# A text in a script none of them uses (Thai, Greek, Hindi) has no candidate at all.
CANDIDATES = ("zh", "en", "es", "de", "fr", "it", "pt", "nl", "pl", "ru", "tr", "ja", "ko", "vi", "ar", "cs", "sv")

# A language is in the running while it is at least this share as likely as the most likely one. The language
# asked for matches while it is in the running; a language is named (detected) when it runs alone. Short texts
# ("Torque on spindle", "Cambio de turno") spread their confidence over neighbours, and the language asked for
# must not lose by a hair; whole sentences leave one language alone. Measured on the labelled set and on its
# first three words (bench/languages.py).
IN_THE_RUNNING = 0.5

# Equipment ids, order numbers, times and codes ("P3", "AGV-B2", "WO-20931", "14:00", "4471-B"): ASCII runs
# holding a digit. Units next to numbers ("182 °C", "12 mm") are no words either.
_ID = re.compile(r"[A-Za-z0-9]+(?:[-_./:][A-Za-z0-9]+)*", re.ASCII)
_UNIT = re.compile(
    r"(?<![A-Za-z])(?:°C|°F|µm|μm|mm|cm|km|m|kg|g|t|ms|s|min|h|bar|kPa|MPa|Pa|kN|Nm|N|kWh|kW|W|V|mA|A|Hz|rpm|ml|l|L)"
    r"(?![A-Za-z])"
)
# Script subtags and regions that say which Chinese script is asked for (an instruction has to name it).
_CHINESE_SCRIPTS = {"hans": "Simplified Chinese", "hant": "Traditional Chinese"}
_CHINESE_REGIONS = {"cn": "hans", "sg": "hans", "my": "hans", "tw": "hant", "hk": "hant", "mo": "hant"}

# Every language lingua knows, by its ISO 639-1 code.
_LANGUAGES = {language.iso_code_639_1.name.lower(): language for language in Language.all()}

_detector: LanguageDetector | None = None
_detector_lock = threading.Lock()


def language_detector() -> LanguageDetector:
    """The detector, built on first use and shared by every thread (lingua's detector is thread-safe).

    High-accuracy mode, its models loaded at build: 4 to 12 s and about 440 MiB once per process (2 cores),
    then about 1 ms a text. Low-accuracy mode builds in 0.4 s in 30 MiB and reads a text in 0.4 ms, but lets the
    right language through for 49 of 60 three-word texts instead of 59 (bench/languages.py): it is the short
    screen lines that need judging. Check outputs in one process (the worker), not in every web process; it may
    call this at start so the first output does not wait for the build."""
    global _detector
    if _detector is None:
        with _detector_lock:
            if _detector is None:
                languages = [_LANGUAGES[code] for code in CANDIDATES]
                _detector = LanguageDetectorBuilder.from_languages(*languages).with_preloaded_language_models().build()
    return _detector


def primary_subtag(tag: str) -> str:
    """The language of a BCP 47 tag, lower case: "zh-Hans" -> "zh", "en_US" -> "en", "ES" -> "es"."""
    return tag.strip().replace("_", "-").split("-")[0].lower()


def words_of(text: str) -> str:
    """The text without its ids and units (each left as a space): what there is to judge the language of."""
    return _UNIT.sub(" ", _ID.sub(_without_ids, text))


def _without_ids(match: re.Match) -> str:
    return " " if any(char.isdigit() for char in match.group()) else match.group()


def has_words(text: str) -> bool:
    """Whether the text holds a letter outside ids and units: "P3", "AGV-B2 -> C3", "182 °C", "12:30" do not."""
    return any(char.isalpha() for char in words_of(text))


def _running(text: str) -> list[str]:
    """The ISO 639-1 codes of the candidates in the running for the text, most likely first; none when no
    candidate can be it (a script none of them uses). Ids and units are taken out first: "AGV-B2", "WO-20931"
    and "182 °C" read as Dutch or German to lingua and pulled English sentences full of them away from English."""
    values = language_detector().compute_language_confidence_values(words_of(text))
    top = values[0].value
    if top == 0.0:
        return []
    return [value.language.iso_code_639_1.name.lower() for value in values if value.value >= IN_THE_RUNNING * top]


def detect_language(text: str) -> str | None:
    """The ISO 639-1 code of the text's language ("zh", "en", "es", ...), or None when unknown: no words (only
    ids, numbers, units), a script no candidate uses, or another language at least half as likely as the most
    likely one (IN_THE_RUNNING; many texts of three or four words)."""
    if not has_words(text):
        return None
    running = _running(text)
    return running[0] if len(running) == 1 else None


def language_matches(text: str, wanted: str) -> tuple[bool, str | None]:
    """Whether the text is in the language asked for (BCP 47, compared by primary subtag: "zh-Hans" is "zh"),
    and the language detected (detect_language's answer).

    The rule: the text matches while the language asked for is in the running, at least half as likely as the
    most likely language (IN_THE_RUNNING), whether or not a language can be named. A three-word English notice
    asked in English passes even where lingua cannot name it ("Reset gripper R4" leans German: (True, None)),
    and the same notice asked in Chinese or Spanish fails, again with none named. Whole sentences leave one
    language in the running: they match exactly when it is the one asked for.
    Also matching, as nothing can be judged: a text without words (ids, numbers, units only: (True, None)),
    an empty wanted, and a language asked for that is not among CANDIDATES. A text in a script no candidate uses
    does not match a candidate: (False, None)."""
    language = primary_subtag(wanted)
    if not has_words(text):
        return True, None
    running = _running(text)
    detected = running[0] if len(running) == 1 else None
    if not language or language not in CANDIDATES:
        return True, detected
    return language in running, detected


def language_name(code: str) -> str:
    """The English name of a language for an instruction to the model: "zh" -> "Chinese", "es-MX" -> "Spanish",
    "zh-Hans" -> "Simplified Chinese", "zh-TW" -> "Traditional Chinese". A code lingua does not know comes back
    as given."""
    subtags = [subtag.lower() for subtag in code.strip().replace("_", "-").split("-")]
    language = _LANGUAGES.get(subtags[0])
    if language is None:
        return code
    if subtags[0] == "zh":
        for subtag in subtags[1:]:
            script = subtag if subtag in _CHINESE_SCRIPTS else _CHINESE_REGIONS.get(subtag)
            if script:
                return _CHINESE_SCRIPTS[script]
    return language.name.title()
