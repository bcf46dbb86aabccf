"""Template bodies: which variables they name, and rendering them with checked values."""

import re

from django.utils.translation import gettext as _

VARIABLE = re.compile(r"\{([^{}]*)\}")
NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


class TemplateSyntaxProblem(ValueError):
    pass


class RenderError(ValueError):
    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.field = field


def template_variables(body: str) -> list[str]:
    """Variable names in order of first use; anything in braces that is not a plain name is an error."""
    names: list[str] = []
    for match in VARIABLE.finditer(body):
        name = match.group(1).strip()
        if not NAME.match(name):
            raise TemplateSyntaxProblem(
                _("{%(text)s} is not a variable: use letters, digits and underscores.") % {"text": match.group(1)}
            )
        if name not in names:
            names.append(name)
    return names


def render(body: str, values: dict[str, object]) -> str:
    """Substitute values literally (no format-spec tricks): missing, extra or non-text values are refused.

    Values have passed the guard (length, control characters, patterns) before they get here."""
    expected = template_variables(body)
    if not isinstance(values, dict):
        raise RenderError(_("variables must be an object mapping names to text."), "variables")
    for name in expected:
        if name not in values or values[name] is None or str(values[name]).strip() == "":
            raise RenderError(_("Variable %(name)s is required.") % {"name": repr(name)}, name)
    extra = sorted(set(values) - set(expected))
    if extra:
        raise RenderError(_("Unknown variable(s): %(names)s.") % {"names": ", ".join(map(str, extra))}, str(extra[0]))
    for name in expected:
        value = values[name]
        if not isinstance(value, str | int | float) or isinstance(value, bool):
            raise RenderError(_("Variable %(name)s must be text or a number.") % {"name": repr(name)}, name)
    return fill(body, values)


def fill(body: str, values: dict[str, object]) -> str:
    """The body with each {name} replaced by its value, stripped (an empty string when it has none); no checks."""
    return VARIABLE.sub(lambda m: str(values.get(m.group(1).strip(), "")).strip(), body)
