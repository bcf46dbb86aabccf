"""The guard every prompt passes: raw length, encoding, control characters, normalisation, length, blocked patterns.
Pure: the rules (prompts.selectors.guard_rules) come in as an argument."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

import regex

from edgeportal.core.text import INVISIBLE, normalise, skeleton
from edgeportal.echo import quoted
from inference.messages import gettext_noop

# Prompt-injection phrases refused in variable values and free prompts; admins add their own.
DEFAULT_BLOCKED_PATTERNS = (
    r"\b(ignore|disregard|forget)\b.{0,30}\b(previous|prior|above|earlier|your)\b.{0,20}"
    r"\b(instructions?|prompts?|rules)\b",
    r"\byou are now\b.{0,30}\b(dan|developer mode|jailbroken|unrestricted)\b",
    r"\b(reveal|print|show|repeat)\b.{0,20}\b(system prompt|hidden instructions|initial instructions)\b",
)
KEEP_CONTROLS = {"\t", "\n", "\r"}  # whitespace: collapsed by normalisation, never a problem
# Text longer than this many times its limit is refused before it is normalised: NFKC can grow a character
# up to 18-fold (U+FDFA), and the cost of normalising grows with what it makes. Legitimate text shrinks by
# far less than half (decomposed accents, runs of spaces, invisible characters), so twice the limit refuses
# nothing that would have passed.
RAW_LENGTH_FACTOR = 2
CONTROLS = regex.compile(r"[^\P{Cc}\t\n\r]+")
MARKS = regex.compile(r"\p{M}+")  # accents and other combining marks, once NFD has taken them apart
NOT_A_WORD = regex.compile(r"[^\p{L}\p{N}]+")
TOO_LONG = gettext_noop("%(field)s has %(chars)d characters; the limit is %(limit)d.")


class GuardRejected(Exception):
    """A refused text: its rule's code, and its English text with %(name)s fields (params), which pages show
    translated (message is the English)."""

    def __init__(self, rule: str, text: str, field: str, **params: object):
        self.rule, self.text, self.field = rule, text, field
        self.params = {"field": field, **params}
        self.message = text % self.params
        super().__init__(self.message)


@dataclass(frozen=True)
class GuardRules:
    max_chars: int
    control_chars: str  # "remove" or "reject"
    blocked_patterns: tuple[re.Pattern, ...]

    @property
    def max_raw_chars(self) -> int:
        return self.max_chars * RAW_LENGTH_FACTOR


def compiled_patterns(admin_added: tuple[str, ...] = ()) -> tuple[re.Pattern, ...]:
    """The built-in patterns and the admins' active ones, compiled case-insensitively; a pattern written with
    non-ASCII letters also in its skeleton form, so look-alike Latin letters do not slip past it either."""
    patterns = [re.compile(source, re.IGNORECASE) for source in (*DEFAULT_BLOCKED_PATTERNS, *admin_added)]
    for pattern in list(patterns):
        if not pattern.pattern.isascii() and (look_alike := _pattern_skeleton(pattern.pattern)) != pattern.pattern:
            try:
                patterns.append(re.compile(look_alike, re.IGNORECASE))
            except re.error:  # a look-alike that is no valid pattern adds nothing; the pattern itself stays
                pass
    return tuple(patterns)


def _pattern_skeleton(source: str) -> str:
    """The pattern with each non-ASCII literal written as its look-alike; escapes and character classes
    (a range of Cyrillic letters is no three letters) are left as they are."""
    out, index, in_class = [], 0, False
    while index < len(source):
        char = source[index]
        if char == "\\":
            out.append(source[index : index + 2])
            index += 2
            continue
        if in_class:
            in_class = char != "]" or out[-1] in ("[", "[^")  # a ] first in a class is a literal
        elif char == "[":
            in_class = True
            if source[index + 1 : index + 2] == "^":
                char, index = "[^", index + 1
        elif not char.isascii():
            char = re.escape(skeleton(char))
        out.append(char)
        index += 1
    return "".join(out)


def pattern_forms(text: str) -> tuple[str, ...]:
    """The forms of a text the blocked patterns are matched against: normalised; its skeleton; the
    skeleton with invisible characters read as spaces, since "ignore\\u3164previous" without them is
    "ignoreprevious", which a word-bounded pattern misses; and that form bare: accents and other marks
    dropped ("ígnore"), and whatever is neither letter nor digit read as a space ("ignore_previous")."""
    text = CONTROLS.sub("", text)  # as the guard removes them
    plain = normalise(text)
    spaced = skeleton(normalise(INVISIBLE.sub(" ", text)))
    bare = skeleton(" ".join(NOT_A_WORD.sub(" ", MARKS.sub("", unicodedata.normalize("NFD", spaced))).split()))
    return tuple(dict.fromkeys((plain, skeleton(plain), spaced, bare)))


def matching_patterns(text: str, rules: GuardRules) -> tuple[re.Pattern, ...]:
    """The blocked patterns that match any form of `text` (see pattern_forms)."""
    if not rules.blocked_patterns:
        return ()
    forms = pattern_forms(text)
    return tuple(pattern for pattern in rules.blocked_patterns if any(pattern.search(form) for form in forms))


def check_patterns(text: str, *, field: str, rules: GuardRules) -> None:
    """Refuse `text` (as sent or normalised) if a blocked pattern matches any of its forms."""
    if found := matching_patterns(text, rules):
        raise blocked(field, found[0])


def blocked(field: str, pattern: re.Pattern) -> GuardRejected:
    why = gettext_noop("%(field)s matches a blocked pattern (%(pattern)s); nothing was run.")
    return GuardRejected("blocked_pattern", why, field, pattern=quoted(pattern.pattern))


def guard_text(text: str, *, field: str, rules: GuardRules) -> str:
    """Check one piece of user text and return it normalised, or raise GuardRejected naming the rule.

    The raw length is checked first, so oversized text is refused before any work grows with it."""
    if len(text) > rules.max_raw_chars:
        raise GuardRejected("too_long", TOO_LONG, field, chars=len(text), limit=rules.max_chars)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        why = gettext_noop("%(field)s is not valid Unicode text (unpaired surrogate).")
        raise GuardRejected("encoding", why, field) from None
    controls = {ch for ch in text if unicodedata.category(ch) == "Cc" and ch not in KEEP_CONTROLS}
    if controls:
        if rules.control_chars == "reject":
            shown = ", ".join(f"U+{ord(ch):04X}" for ch in sorted(controls))
            why = gettext_noop("%(field)s contains control characters (%(shown)s).")
            raise GuardRejected("control_characters", why, field, shown=shown)
        text = "".join(ch for ch in text if ch not in controls)
    normalised = normalise(text)
    if len(normalised) > rules.max_chars:
        raise GuardRejected("too_long", TOO_LONG, field, chars=len(normalised), limit=rules.max_chars)
    check_patterns(text, field=field, rules=rules)
    return normalised
