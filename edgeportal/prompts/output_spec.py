"""A template's declared outputs: one per consumer, each with its language, format and instruction, made from
the request or from another output's text. Parsed and checked here, for the editor, YAML import and entry."""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field

import jsonschema
import referencing.exceptions
from django.utils.translation import gettext as _

NAME = re.compile(r"[a-z][a-z0-9_-]{0,39}\Z")
# BCP 47 as plants write it: a primary language subtag, then optional script/region/variant subtags.
LANGUAGE = re.compile(r"[a-zA-Z]{2,3}(-[a-zA-Z0-9]{2,8}){0,3}\Z")
FORMATS = ("text", "json")
ON_MISMATCH = ("deliver", "hold")
FROM_REQUEST = "request"
MAX_OUTPUTS = 6
MAX_INSTRUCTION = 2000
MAX_SCHEMA_CHARS = 4000
KEYS = {"name", "language", "format", "schema", "instruction", "from", "on_mismatch", "max_new_tokens"}


class OutputSpecError(ValueError):
    """What is wrong with a declaration, for the person who wrote it."""


@dataclass(frozen=True)
class OutputSpec:
    name: str
    language: str = ""  # BCP 47; empty: the template's language
    format: str = "text"
    schema: dict = field(default_factory=dict)  # json only
    instruction: str = ""
    source: str = FROM_REQUEST  # "request", or the name of an earlier output whose text it is made from
    on_mismatch: str = "hold"  # still in another language after a retry: deliver it anyway, or hold it
    max_new_tokens: int | None = None  # None: the template's

    @property
    def from_request(self) -> bool:
        return self.source == FROM_REQUEST

    def as_dict(self) -> dict:
        """The declaration as stored and exported: keys as written ("from"), defaults left out."""
        values = asdict(self)
        values["from"] = values.pop("source")
        defaults = {"format": "text", "schema": {}, "instruction": "", "from": FROM_REQUEST, "on_mismatch": "hold",
                    "max_new_tokens": None, "language": ""}  # fmt: skip
        return {key: value for key, value in values.items() if key == "name" or value != defaults[key]}


def parse_outputs(raw: object, *, default_language: str = "en") -> list[OutputSpec]:
    """The declared outputs, checked: names unique, languages BCP 47, formats known, schemas valid JSON
    Schemas, each made from the request or from an output declared before it (so there is never a cycle).
    An empty declaration is [] (the job has its one text output, as before outputs existed)."""
    if raw in (None, "", []):
        return []
    if not isinstance(raw, list):
        raise OutputSpecError(_("Outputs must be a list of objects, e.g. %(example)s.") % {"example": EXAMPLE})
    if len(raw) > MAX_OUTPUTS:
        raise OutputSpecError(_("At most %(count)d outputs per template.") % {"count": MAX_OUTPUTS})
    specs: list[OutputSpec] = []
    for position, item in enumerate(raw, start=1):
        specs.append(_parse_one(item, position, [spec.name for spec in specs], default_language))
    return specs


def stored_spec(values: dict, *, default_language: str = "en") -> OutputSpec:
    """One declaration as a job stored it (checked with its template when saved, so its source existed)."""
    source = values.get("from")
    return _parse_one(values, 1, [source] if isinstance(source, str) else [], default_language)


def _parse_one(item: object, position: int, earlier: list[str], default_language: str) -> OutputSpec:
    where = _("Output %(position)d") % {"position": position}
    if not isinstance(item, dict):
        raise OutputSpecError(_("%(where)s must be an object with a name.") % {"where": where})
    unknown = sorted(set(item) - KEYS)
    if unknown:
        raise OutputSpecError(
            _("%(where)s has unknown keys %(keys)s; known: %(known)s.")
            % {"where": where, "keys": ", ".join(map(str, unknown)), "known": ", ".join(sorted(KEYS))}
        )
    name = item.get("name")
    if not isinstance(name, str) or not NAME.match(name):
        raise OutputSpecError(
            _("%(where)s needs a name of lower-case letters, digits, - and _ (at most 40), starting with a letter.")
            % {"where": where}
        )
    where = _("Output %(name)r") % {"name": name}
    if name in earlier or name == FROM_REQUEST:
        raise OutputSpecError(_("%(where)s: the name is used twice or reserved.") % {"where": where})
    language = _text(item, "language", where, 35) or default_language
    if not LANGUAGE.match(language):
        raise OutputSpecError(
            _("%(where)s: language %(language)r is not a BCP 47 tag such as zh, en-US or zh-Hans.")
            % {"where": where, "language": language}
        )
    format_ = _text(item, "format", where, 10) or "text"
    if format_ not in FORMATS:
        raise OutputSpecError(_("%(where)s: format must be text or json.") % {"where": where})
    schema = item.get("schema") or {}
    if format_ == "json":
        schema = _schema(schema, where)
    elif schema:
        raise OutputSpecError(_("%(where)s: a schema needs the json format.") % {"where": where})
    source = _text(item, "from", where, 40) or FROM_REQUEST
    if source != FROM_REQUEST and source not in earlier:
        raise OutputSpecError(
            _("%(where)s: from must be request or the name of an output declared before it (%(names)s).")
            % {"where": where, "names": ", ".join(earlier) or "-"}
        )
    on_mismatch = _text(item, "on_mismatch", where, 10) or "hold"
    if on_mismatch not in ON_MISMATCH:
        raise OutputSpecError(_("%(where)s: on_mismatch must be deliver or hold.") % {"where": where})
    limit = item.get("max_new_tokens")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 1024):
        raise OutputSpecError(_("%(where)s: max_new_tokens must be a whole number from 1 to 1024.") % {"where": where})
    return OutputSpec(
        name=name, language=language, format=format_, schema=schema,
        instruction=_text(item, "instruction", where, MAX_INSTRUCTION), source=source, on_mismatch=on_mismatch,
        max_new_tokens=limit,
    )  # fmt: skip


def _text(item: dict, key: str, where: str, limit: int) -> str:
    value = item.get(key)
    if value is None:
        return ""
    if not isinstance(value, str) or len(value) > limit or "\x00" in value:
        raise OutputSpecError(
            _("%(where)s: %(key)s must be text of at most %(limit)d characters.")
            % {"where": where, "key": key, "limit": limit}
        )
    return value.strip()


def _schema(schema: object, where: str) -> dict:
    if not isinstance(schema, dict) or not schema:
        raise OutputSpecError(_("%(where)s: a json output needs a JSON Schema object.") % {"where": where})
    if len(json.dumps(schema)) > MAX_SCHEMA_CHARS:
        raise OutputSpecError(
            _("%(where)s: the schema is longer than %(limit)d characters.")
            % {"where": where, "limit": MAX_SCHEMA_CHARS}
        )
    try:
        validator = jsonschema.validators.validator_for(schema)
        validator.check_schema(schema)
        # A reference the schema cannot resolve on its own (a URL, a missing #/definitions/...) fails here,
        # at save, instead of when an output is checked.
        for probe in ({}, [], "", 0, None):
            list(validator(schema).iter_errors(probe))
    except jsonschema.SchemaError as error:
        raise OutputSpecError(
            _("%(where)s: not a valid JSON Schema: %(error)s") % {"where": where, "error": error.message}
        ) from None
    except (referencing.exceptions.Unresolvable, TypeError, RecursionError, ValueError) as error:
        raise OutputSpecError(
            _("%(where)s: not a usable JSON Schema (it must stand alone, without outside references): %(error)s")
            % {"where": where, "error": str(error)[:200]}
        ) from None
    return schema


EXAMPLE = (
    '[{"name": "ticket", "language": "zh", "instruction": "Summarise for the quality ticket."}, '
    '{"name": "mes", "language": "en", "format": "json", "schema": {"type": "object"}, "from": "ticket"}]'
)
