"""The guard every prompt passes: encoding, control characters, normalisation, length, blocked patterns."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from django.conf import settings

# Prompt-injection phrases refused in variable values and free prompts; admins add their own.
DEFAULT_BLOCKED_PATTERNS = (
    r"\b(ignore|disregard|forget)\b.{0,30}\b(previous|prior|above|earlier|your)\b.{0,20}"
    r"\b(instructions?|prompts?|rules)\b",
    r"\byou are now\b.{0,30}\b(dan|developer mode|jailbroken|unrestricted)\b",
    r"\b(reveal|print|show|repeat)\b.{0,20}\b(system prompt|hidden instructions|initial instructions)\b",
)
KEEP_CONTROLS = {"\t", "\n", "\r"}  # whitespace: collapsed by normalisation, never a problem


class GuardRejected(Exception):
    def __init__(self, rule: str, message: str, field: str):
        super().__init__(message)
        self.rule = rule
        self.message = message
        self.field = field


@dataclass(frozen=True)
class GuardRules:
    max_chars: int
    control_chars: str  # "remove" or "reject"
    blocked_patterns: tuple[re.Pattern, ...]

    @classmethod
    def current(cls, *, max_chars: int, with_patterns: bool = True) -> GuardRules:
        from edgeportal.prompts.models import BlockedPattern

        patterns = []
        if with_patterns:
            admin_added = BlockedPattern.objects.filter(is_active=True).values_list("pattern", flat=True)
            patterns = [*DEFAULT_BLOCKED_PATTERNS, *admin_added]
        return cls(
            max_chars=max_chars,
            control_chars=settings.EDGE_GUARD_CONTROL_CHARS,
            blocked_patterns=tuple(re.compile(p, re.IGNORECASE) for p in patterns),
        )


def normalise(text: str) -> str:
    """The same request written twice becomes the same prompt: NFKC (full-width -> ASCII), invisible format
    characters (zero-width space, soft hyphen) removed, whitespace collapsed."""
    text = unicodedata.normalize("NFKC", text)
    text = "".join(ch for ch in text if unicodedata.category(ch) != "Cf")
    return " ".join(text.split())


def check_patterns(text: str, *, field: str, rules: GuardRules) -> None:
    for pattern in rules.blocked_patterns:
        if pattern.search(text):
            raise GuardRejected(
                "blocked_pattern", f"{field} matches a blocked pattern ({pattern.pattern!r}); nothing was run.", field
            )


def guard_text(text: str, *, field: str, rules: GuardRules) -> str:
    """Check one piece of user text and return it normalised, or raise GuardRejected naming the rule."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise GuardRejected("encoding", f"{field} is not valid Unicode text (unpaired surrogate).", field) from None
    controls = {ch for ch in text if unicodedata.category(ch) == "Cc" and ch not in KEEP_CONTROLS}
    if controls:
        if rules.control_chars == "reject":
            shown = ", ".join(f"U+{ord(ch):04X}" for ch in sorted(controls))
            raise GuardRejected("control_characters", f"{field} contains control characters ({shown}).", field)
        text = "".join(ch for ch in text if ch not in controls)
    text = normalise(text)
    if len(text) > rules.max_chars:
        raise GuardRejected("too_long", f"{field} has {len(text)} characters; the limit is {rules.max_chars}.", field)
    check_patterns(text, field=field, rules=rules)
    return text
