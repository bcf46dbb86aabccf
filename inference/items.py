"""The ids and numbers of a request that an answer must carry ("P3", "AGV-B2", "120 °C"), and whether an answer
carries one. The reranker scores candidates with them (edgeportal.outputs.quality), the copy bias favours them
(inference.copy_bias), the entry lists them (edgeportal.jobs.entry): kept here, without Django, for all three."""

from __future__ import annotations

import re
import unicodedata

# Equipment ids, order numbers and codes: capital letters and digits, parts joined by hyphens ("P3", "AGV-B2",
# "PLC-7", "WO-20931"). A part of letters alone ("AGV", "PLC") is an id only inside a token that holds a digit.
_ID = re.compile(r"(?<![A-Za-z0-9-])[A-Z0-9]+(?:-[A-Z0-9]+)*(?![A-Za-z0-9])")
# Symbols of units that an answer in any language writes the same way. Word units ("10 minutes", "5 Minuten",
# "5 分钟") are translated, so only their number is required.
_UNITS = r"°C|°F|℃|%|mm|cm|µm|μm|kg|kN|Nm|kPa|MPa|bar|kWh|kW|mA|Hz|rpm|ms|ml|m|g|V|A|W|N|s|h|l"
_NUMBER = re.compile(rf"(?<![A-Za-z0-9.,])\d+(?:[.,:]\d+)*(?:\s?(?:{_UNITS})(?![A-Za-z0-9]))?")


def required_items(request: str) -> list[str]:
    """What an answer must carry from the request, unique, in order of appearance: equipment ids (capital letters
    mixed with digits: "P3", "AGV-B2") and numbers, with their unit when a unit symbol follows ("3.5 mm",
    "120 °C", "15%"; "10 minutes" gives "10": the word is translated).

    Letter-only names ("line A", "shift C", "Camera A") are not required: an answer writes them "Linie A",
    "A线", "turno C", and a bare capital letter cannot be told from an ordinary word in the answer."""
    found: list[tuple[int, str]] = []
    id_spans = []
    for match in _ID.finditer(request):
        token = match.group()
        if any(char.isdigit() for char in token) and any(char.isalpha() for char in token):
            found.append((match.start(), token))
            id_spans.append(match.span())
    for match in _NUMBER.finditer(request):
        if not any(start <= match.start() < end for start, end in id_spans):
            found.append((match.start(), match.group()))
    items: list[str] = []
    for _, item in sorted(found):
        if item not in items:
            items.append(item)
    return items


def _normalised(text: str) -> str:
    """Full-width digits and letters as ASCII (full-width P3 -> "p3"), "℃" as "°C", lower case, decimal comma as
    point."""
    text = unicodedata.normalize("NFKC", text).casefold()
    return re.sub(r"(?<=\d),(?=\d)", ".", text)


def _item_pattern(item: str) -> re.Pattern:
    """The item as a pattern that tolerates a space or none between a number and its unit, and a hyphen, space or
    nothing between the parts of an id; it must stand alone: "P3" is not in "P33" nor "AP3", "3.5" not in "13.5"
    nor "3.55"."""
    parts = re.findall(r"\d+(?:\.\d+)*|[a-z]+|[^\w\s\-]+", _normalised(item))
    body = r"[\s\-\u2010\u2013]?".join(re.escape(part) for part in parts)
    return re.compile(rf"(?<![a-z0-9])(?<![0-9]\.){body}(?![a-z0-9])(?!\.[0-9])")


def echoed(item: str, answer: str) -> bool:
    """Whether the answer carries the item, whatever its case, full-width digits, decimal comma or spacing."""
    return _item_pattern(item).search(_normalised(answer)) is not None


def echo_share(items: list[str], answer: str) -> float:
    """The share of the items the answer carries; 1.0 when there is nothing to carry."""
    if not items:
        return 1.0
    return sum(echoed(item, answer) for item in items) / len(items)
