"""Text functions without Django: how the guard, the cache key and the template variables see a text."""

from __future__ import annotations

import functools
import unicodedata

import regex
from confusable_homoglyphs import utils as confusables_files

# Invisible code points (Unicode's Default_Ignorable_Code_Point: zero-width and joiner characters, the
# combining grapheme joiner, Hangul fillers, variation selectors, tags, ...) and other format characters.
INVISIBLE = regex.compile(r"[\p{Default_Ignorable_Code_Point}\p{Cf}]+")


def normalise(text: str) -> str:
    """The same request written twice becomes the same prompt: NFKC (full-width -> ASCII), invisible
    characters (zero-width space, soft hyphen, joiners, Hangul fillers, variation selectors) removed,
    whitespace collapsed."""
    text = INVISIBLE.sub("", text)  # first: a combining grapheme joiner would keep NFKC from composing
    text = INVISIBLE.sub("", unicodedata.normalize("NFKC", text))
    return " ".join(text.split())


@functools.cache
def _skeleton_table() -> dict[int, str]:
    """Each non-ASCII character with an ASCII letter or digit look-alike (Unicode TS #39 confusables, as
    confusable-homoglyphs ships them), mapped to that look-alike: a letter of the same case first, then any
    letter, then a digit. TS #39 writes capital Cyrillic I (U+0406) as l; via the ASCII look-alikes of l it
    becomes I."""
    # Read here, not at import: the library's own module keeps all 9 600 entries (11 MB) for good.
    confusables_data = confusables_files.load("confusables.json")
    table = {}
    for char, homoglyphs in confusables_data.items():
        if len(char) != 1 or char.isascii():
            continue
        ascii_like = [h["c"] for h in homoglyphs if len(h["c"]) == 1 and h["c"].isascii() and h["c"].isalnum()]
        for near in list(ascii_like):
            ascii_like += [h["c"] for h in confusables_data.get(near, ()) if h["c"].isascii() and h["c"].isalnum()]
        if ascii_like:
            table[ord(char)] = min(ascii_like, key=lambda h: (not (h.isalpha() and h.isupper() == char.isupper()),
                                                                not h.isalpha(), ascii_like.index(h)))  # fmt: skip
    return table


def skeleton(text: str) -> str:
    """`text` with look-alike letters written in ASCII ("\\u0456gnore", with a Cyrillic i, becomes "ignore")."""
    return text.translate(_skeleton_table())
