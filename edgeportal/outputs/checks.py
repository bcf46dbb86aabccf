"""Checking one output's text: its language against the one asked for, a JSON output against its schema."""

from __future__ import annotations

import json
from dataclasses import dataclass

import jsonschema
import referencing.exceptions

from edgeportal.outputs.language import language_matches
from edgeportal.prompts.output_spec import OutputSpec


@dataclass(frozen=True)
class Checked:
    language_ok: bool
    language_detected: str  # "" when the text gives nothing to judge
    valid: bool | None = None  # json: valid against its schema; text: None
    data: object = None  # json: the parsed value, when valid
    error: str = ""


def _strings(value: object) -> list[str]:
    """The text a JSON value holds (its strings, not its keys): what its language is judged on. Walked with
    a stack: a model may nest arrays deeper than Python's recursion allows."""
    texts, stack = [], [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            texts.append(item)
        elif isinstance(item, dict):
            stack.extend(reversed(list(item.values())))
        elif isinstance(item, list):
            stack.extend(reversed(item))
    return texts


def _parsed(text: str, schema: dict) -> tuple[object, str]:
    """The JSON value and "" when the text is one and its schema holds; else None and what is wrong."""
    try:
        value = json.loads(text)
    except (ValueError, RecursionError) as error:
        return None, f"not JSON: {error}"[:500]
    try:
        validator = jsonschema.validators.validator_for(schema)(schema)
        problem = jsonschema.exceptions.best_match(validator.iter_errors(value))
    except (RecursionError, referencing.exceptions.Unresolvable) as error:  # nested beyond reason
        return None, f"could not be checked against its schema: {error}"[:500]
    if problem is not None:
        where = "/".join(map(str, problem.absolute_path)) or "the value"
        return None, f"not valid against its schema at {where}: {problem.message}"[:500]
    return value, ""


def output_check(spec: OutputSpec, text: str) -> Checked:
    """Judge a run's text as the output spec declares it."""
    if spec.format == "json":
        value, error = _parsed(text, spec.schema)
        if error:
            return Checked(language_ok=True, language_detected="", valid=False, error=error)
        matches, detected = language_matches(" ".join(_strings(value)), spec.language)
        return Checked(language_ok=matches, language_detected=detected or "", valid=True, data=value)
    matches, detected = language_matches(text, spec.language)
    return Checked(language_ok=matches, language_detected=detected or "")
