"""Measures of an answer's quality: stuck in a loop, ids and numbers of the request carried, empty or cut off."""

from __future__ import annotations

import re
from collections import Counter

from inference.items import echo_share, echoed, required_items

__all__ = ["echo_share", "echoed", "empty_or_truncated", "looping", "required_items", "words"]

# Chinese, Japanese and Korean characters: each one a word, as these scripts put no spaces between words.
_CJK = r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af]"
# A word: one CJK character, a run of other letters and digits, or one punctuation mark.
_WORD = re.compile(rf"{_CJK}|(?:(?!{_CJK})[^\W_])+|[^\w\s]|_")


def words(text: str) -> list[str]:
    """The text's words, lower case: runs of letters or digits, each punctuation mark, each CJK character."""
    return _WORD.findall(text.casefold())


def looping(text: str, n: int = 4, times: int = 3) -> bool:
    """Whether some n words in a row occur `times` times or more (overlaps count): "1. 1. 1. 1. 1. 1." does,
    and so does "检查检查检查检查"."""
    tokens = words(text)
    ngrams = Counter(tuple(tokens[start : start + n]) for start in range(len(tokens) - n + 1))
    return any(count >= times for count in ngrams.values())


def empty_or_truncated(text: str, finish_reason: str) -> str | None:
    """Why an answer is flawed: "empty" without a visible character, "truncated" when cut at its token limit;
    None when neither."""
    if not text.strip():
        return "empty"
    if finish_reason == "length":
        return "truncated"
    return None
