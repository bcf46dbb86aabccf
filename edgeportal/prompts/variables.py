"""Template variables: their declared types (text, choice, integer), and checking a value against one."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from django.utils.translation import gettext as _

from edgeportal.core.text import normalise
from inference.integers import IntegerError, parse_int

TYPES = ("text", "choice", "integer")
# Declared bounds stay in a range every database and JSON reader keeps exact.
BOUND = 10**15
MAX_LENGTH = 100_000
WORDS = ("label", "help", "example")  # what the submit form shows about a variable
MAX_WORDS = 200
FULL_WIDTH_DIGITS = {0xFF10 + digit: str(digit) for digit in range(10)} | {0xFF0B: "+", 0xFF0D: "-"}


class VariableError(ValueError):
    def __init__(self, message: str, field: str):
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class Variable:
    name: str
    type: str = "text"
    max_length: int | None = None  # text: at most this many characters (the global limit applies too)
    choices: list[str] = field(default_factory=list)  # choice: one of these
    min: int | None = None  # integer bounds
    max: int | None = None
    # For people filling the form: a label (else the name), one line of help and an example value.
    label: str | None = None
    help: str | None = None
    example: str | None = None

    def as_dict(self) -> dict:
        return {key: value for key, value in asdict(self).items() if value not in (None, [])}

    def check(self, value: object) -> str:
        """The value as text for the prompt, or VariableError saying what is wrong with it."""
        if self.type == "integer":
            # Checked as sent, not normalised (NFKC would turn "²" and "①" into digits); only full-width
            # digits, as an East Asian keyboard types them, count as the digits they are.
            if isinstance(value, str):
                value = value.translate(FULL_WIDTH_DIGITS)
            try:
                subject = _("Variable %(name)s") % {"name": repr(self.name)}
                return str(parse_int(value, field=subject, low=self.min, high=self.max))
            except IntegerError as error:
                raise VariableError(_(error.text) % error.params, self.name) from None
        if not isinstance(value, str):
            raise VariableError(_("Variable %(name)s must be text.") % {"name": repr(self.name)}, self.name)
        if self.type == "choice":
            # Values arrive normalised; compare with the declared choices normalised the same way.
            matches = [choice for choice in self.choices if normalise(choice) == normalise(value)]
            if not matches:
                raise VariableError(
                    _("Variable %(name)s must be one of: %(choices)s.")
                    % {"name": repr(self.name), "choices": ", ".join(self.choices)},
                    self.name,
                )
            return matches[0]
        if self.max_length is not None and len(value) > self.max_length:
            raise VariableError(
                _("Variable %(name)s is longer than %(limit)d characters.")
                % {"name": repr(self.name), "limit": self.max_length},
                self.name,
            )
        return value


def parse_spec(raw: object, body_variables: list[str]) -> list[Variable]:
    """Validate a template's variable declarations against the names its body uses.

    Names the body uses but the spec leaves out are plain text; a declared name the body never uses is an
    error, as is anything malformed. Errors name the variable and what is wrong.
    """
    if raw in (None, ""):
        raw = []
    if not isinstance(raw, list):
        raise VariableError(_("Variables must be a list of {name, type, ...} objects."), "variables")
    declared: dict[str, Variable] = {}
    for item in raw:
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            raise VariableError(_("Each variable needs a name."), "variables")
        name = item["name"]
        unknown = set(item) - {"name", "type", "max_length", "choices", "min", "max", *WORDS}
        if unknown:
            raise VariableError(
                _("Variable %(name)s has unknown keys: %(keys)s.")
                % {"name": repr(name), "keys": ", ".join(sorted(unknown))},
                name,
            )
        kind = item.get("type", "text")
        if kind not in TYPES:
            raise VariableError(
                _("Variable %(name)s has type %(type)s; use one of %(types)s.")
                % {"name": repr(name), "type": repr(kind), "types": ", ".join(TYPES)},
                name,
            )
        if name not in body_variables:
            raise VariableError(
                _("Variable %(name)s is declared but the body never uses {%(variable)s}.")
                % {"name": repr(name), "variable": name},
                name,
            )
        if name in declared:
            raise VariableError(_("Variable %(name)s is declared twice.") % {"name": repr(name)}, name)
        choices = item.get("choices") or []
        if kind == "choice" and (
            not isinstance(choices, list) or not choices or not all(isinstance(c, str) and c for c in choices)
        ):
            raise VariableError(
                _("Variable %(name)s is a choice and needs a non-empty list of text choices.") % {"name": repr(name)},
                name,
            )
        bounds = {}
        for bound, low, high in (("max_length", 1, MAX_LENGTH), ("min", -BOUND, BOUND), ("max", -BOUND, BOUND)):
            if item.get(bound) is not None:
                if not isinstance(item[bound], int):  # a JSON or YAML number, not text
                    raise VariableError(
                        _("Variable %(name)s: %(key)s must be a whole number.") % {"name": repr(name), "key": bound},
                        name,
                    )
                try:
                    subject = _("Variable %(name)s: %(key)s") % {"name": repr(name), "key": bound}
                    bounds[bound] = parse_int(item[bound], field=subject, low=low, high=high)
                except IntegerError as error:
                    raise VariableError(_(error.text) % error.params, name) from None
        words = {}
        for key in WORDS:
            if item.get(key) is not None:
                if not isinstance(item[key], str) or len(item[key]) > MAX_WORDS:
                    raise VariableError(
                        _("Variable %(name)s: %(key)s must be text of at most %(limit)d characters.")
                        % {"name": repr(name), "key": key, "limit": MAX_WORDS},
                        name,
                    )
                words[key] = item[key]
        choice_list = list(choices) if kind == "choice" else []
        declared[name] = Variable(name=name, type=kind, choices=choice_list, **bounds, **words)
    return [declared.get(name, Variable(name=name)) for name in body_variables]
