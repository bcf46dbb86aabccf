"""Lanes and priorities: the two names every queued job is sorted by, defined once.

They are StrEnums, so a member is its string: Redis fields, Lua scripts, database rows and JSON carry the
plain value ("short", "high"), and comparing a member with a string read back from any of them works.
"""

from __future__ import annotations

from enum import StrEnum


class Lane(StrEnum):
    """Short prompts and long ones run in lanes of their own, so a long prompt never blocks short ones."""

    SHORT = "short"
    LONG = "long"


class Priority(StrEnum):
    """A job's priority gives it a head start in its lane's rank (the scheduler's priority_weight_*_ms)."""

    HIGH = "high"  # safety, line stops
    NORMAL = "normal"
    LOW = "low"  # reports


LANES: tuple[Lane, ...] = tuple(Lane)  # in the order the scheduler prefers them
