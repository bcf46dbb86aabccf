"""The manager's submit form: fields built from the chosen template's variables (labelled, with help and an
example), or a free prompt; priority as three explained choices; the deadline in seconds."""

import redis
from django import forms
from django.conf import settings
from django.utils.translation import gettext_lazy as _

from edgeportal.core.queueing import model_catalog, scheduler_settings
from edgeportal.formfields import SecondsField, StrictIntegerField
from edgeportal.jobs.models import Job
from edgeportal.prompts.models import PromptTemplate
from edgeportal.prompts.variables import Variable

VARIABLE_PREFIX = "var_"
PRIORITY_HELP = {
    "high": _("Safety and line stops: goes first."),
    "normal": _("Everyday requests. The default."),
    "low": _("Reports and summaries that can wait."),
}


def variable_help(variable: Variable) -> str:
    """The template's own help line for the variable, else what its type takes."""
    if variable.help:
        return variable.help
    if variable.type == "integer":
        if variable.min is not None and variable.max is not None:
            return _("A whole number from %(min)d to %(max)d.") % {"min": variable.min, "max": variable.max}
        if variable.min is not None:
            return _("A whole number, at least %(min)d.") % {"min": variable.min}
        if variable.max is not None:
            return _("A whole number, at most %(max)d.") % {"max": variable.max}
        return _("A whole number.")
    if variable.type == "text":
        limit = min(variable.max_length or settings.EDGE_MAX_VARIABLE_CHARS, settings.EDGE_MAX_VARIABLE_CHARS)
        return _("Up to %(count)d characters.") % {"count": limit}
    return ""


def field_for(variable: Variable) -> forms.Field:
    """A form field of the variable's declared type: choices become a select, integers a number input with
    their range, text a line with its length limit; each with its label, help and example."""
    label = variable.label or variable.name.replace("_", " ").capitalize()
    example = {"placeholder": _("e.g. %(example)s") % {"example": variable.example}} if variable.example else {}
    help_text = variable_help(variable)
    if variable.type == "choice":
        choices = [("", _("Choose…"))] + [(c, c) for c in variable.choices]
        return forms.ChoiceField(label=label, choices=choices, help_text=help_text)
    if variable.type == "integer":
        return StrictIntegerField(
            label=label, min_value=variable.min, max_value=variable.max, help_text=help_text,
            widget=forms.NumberInput(attrs=example),
        )  # fmt: skip
    limit = min(variable.max_length or settings.EDGE_MAX_VARIABLE_CHARS, settings.EDGE_MAX_VARIABLE_CHARS)
    return forms.CharField(label=label, max_length=limit, help_text=help_text, widget=forms.TextInput(attrs=example))


def _scheduler():
    try:
        return scheduler_settings()
    except redis.RedisError:  # the page still shows; submitting will say the queue is down
        return settings.EDGE_SCHEDULER


def default_deadline_ms(template: PromptTemplate | None, scheduler) -> int:
    """The deadline a job from this form gets when the field is left empty (short lane; the node's settings)."""
    if template is not None and template.deadline_ms:
        return min(template.deadline_ms, scheduler.max_deadline_ms)
    return scheduler.default_deadline_ms


class JobSubmitForm(forms.Form):
    priority = forms.ChoiceField(
        label=_("Priority"),
        choices=Job.Priority.choices,
        initial=Job.Priority.NORMAL,
        required=False,  # empty is normal
        widget=forms.RadioSelect,
    )
    deadline_s = SecondsField(label=_("Deadline (seconds)"), required=False)

    def __init__(self, *args, template: PromptTemplate | None, **kwargs):
        super().__init__(*args, **kwargs)
        self.template = template
        scheduler = _scheduler()
        default_s = default_deadline_ms(template, scheduler) / 1000
        self.fields["deadline_s"].max_seconds = scheduler.max_deadline_ms / 1000
        if template is not None and template.deadline_ms:
            hint = _("Empty: %(seconds)s s, the template's.") % {"seconds": f"{default_s:g}"}
        else:  # the entry gives a long prompt the long lane's default (default_deadline_for)
            hint = _("Empty: %(seconds)s s, the node's default (%(long)s s for a long prompt).") % {
                "seconds": f"{default_s:g}",
                "long": f"{scheduler.long_deadline_ms / 1000:g}",
            }
        self.fields["deadline_s"].help_text = hint
        self.fields["deadline_s"].widget.attrs["placeholder"] = f"{default_s:g}"
        models = model_catalog().names
        if len(models) > 1:  # one model needs no choice
            self.fields["model"] = forms.ChoiceField(
                choices=[("", _("the template's or the default"))] + [(name, name) for name in models],
                required=False,
                label=_("Model"),
                help_text=_("The default is %(model)s.") % {"model": models[0]},
            )
        if template is None:
            self.fields["prompt"] = forms.CharField(
                widget=forms.Textarea(attrs={"rows": 4}),
                max_length=settings.EDGE_MAX_PROMPT_CHARS,
                label=_("Prompt"),
                help_text=_("At most %(count)d characters.") % {"count": settings.EDGE_MAX_PROMPT_CHARS},
            )
        else:
            for variable in template.variable_spec():
                self.fields[VARIABLE_PREFIX + variable.name] = field_for(variable)
        self.order_fields([name for name in self.fields if name not in ("priority", "deadline_s", "model")])

    def priority_options(self):
        """Each priority's radio input with the line that says when to use it."""
        return [(option, PRIORITY_HELP[option.data["value"]]) for option in self["priority"]]

    def deadline_ms(self) -> int | None:
        seconds = self.cleaned_data["deadline_s"]
        return None if seconds is None else round(seconds * 1000)

    def variables(self) -> dict[str, str]:
        return {
            name.removeprefix(VARIABLE_PREFIX): value
            for name, value in self.cleaned_data.items()
            if name.startswith(VARIABLE_PREFIX)
        }

    def add_rejection(self, field: str | None, message: str) -> None:
        """Show a service error next to the field it concerns, or above the form."""
        if field == "deadline_ms":
            field = "deadline_s"
        name = VARIABLE_PREFIX + field if field and VARIABLE_PREFIX + field in self.fields else field
        self.add_error(name if name in self.fields else None, message)
