"""The submit form's live preview: the prompt the model will read from what the manager typed so far, with its
token count. It shows unfilled variables as {name} and says what is wrong with a value, never raises."""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings
from django.utils.translation import gettext as _

from edgeportal.core.text import normalise
from edgeportal.prompts.guard import RAW_LENGTH_FACTOR
from edgeportal.prompts.models import PromptTemplate
from edgeportal.prompts.rendering import fill
from edgeportal.prompts.tokens import count_tokens
from edgeportal.prompts.variables import VariableError


@dataclass(frozen=True)
class SubmitPreview:
    text: str = ""
    tokens: int | None = None
    missing: tuple[str, ...] = ()  # variables still empty, shown as {name}
    problem: str = ""  # why no prompt can be shown


def submit_preview(*, template: PromptTemplate | None, values: dict[str, str], prompt: str = "") -> SubmitPreview:
    """What the model would read: the template's body filled with the values given (checked by their
    declared types), or the free prompt; normalised as the entry normalises it."""
    missing: tuple[str, ...] = ()
    if template is None:
        text = prompt
    else:
        filled = {}
        for variable in template.variable_spec():
            value = (values.get(variable.name) or "").strip()
            if not value:
                filled[variable.name] = f"{{{variable.name}}}"
                missing += (variable.name,)
                continue
            try:
                filled[variable.name] = variable.check(value)
            except VariableError as error:
                return SubmitPreview(problem=str(error))
        text = fill(template.body, filled)
    limit = settings.EDGE_MAX_PROMPT_CHARS
    if len(text) > limit * RAW_LENGTH_FACTOR:
        return SubmitPreview(problem=_("The prompt has %(chars)d characters; the limit is %(limit)d.")
                             % {"chars": len(text), "limit": limit})  # fmt: skip
    text = normalise(text)
    if not text:
        return SubmitPreview()
    model = template.model if template is not None else None
    return SubmitPreview(text=text, tokens=count_tokens(text, model=model or None), missing=missing)
