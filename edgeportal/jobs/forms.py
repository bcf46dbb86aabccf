"""The manager's submit form: fields built from the chosen template's variables, or a free prompt."""

from django import forms
from django.conf import settings
from django.utils.translation import gettext_lazy as _

from edgeportal.core.queueing import model_catalog
from edgeportal.formfields import StrictIntegerField
from edgeportal.jobs.models import Job
from edgeportal.prompts.models import PromptTemplate
from edgeportal.prompts.variables import Variable

VARIABLE_PREFIX = "var_"


def field_for(variable: Variable) -> forms.Field:
    """A form field of the variable's declared type: choices become a select, integers a number input."""
    label = variable.name.replace("_", " ").capitalize()
    if variable.type == "choice":
        return forms.ChoiceField(label=label, choices=[("", "---------")] + [(c, c) for c in variable.choices])
    if variable.type == "integer":
        return StrictIntegerField(label=label, min_value=variable.min, max_value=variable.max)
    limit = min(variable.max_length or settings.EDGE_MAX_VARIABLE_CHARS, settings.EDGE_MAX_VARIABLE_CHARS)
    return forms.CharField(label=label, max_length=limit)


class JobSubmitForm(forms.Form):
    priority = forms.ChoiceField(
        choices=Job.Priority.choices,
        initial=Job.Priority.NORMAL,
        required=False,  # empty is normal
        label=_("Priority"),
        help_text=_("High: safety and line stops."),
    )
    deadline_ms = StrictIntegerField(
        label=_("Deadline (ms)"), required=False, min_value=1, help_text=_("Empty: the template's or the default.")
    )

    def __init__(self, *args, template: PromptTemplate | None, **kwargs):
        super().__init__(*args, **kwargs)
        self.template = template
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
        self.order_fields([name for name in self.fields if name not in ("priority", "deadline_ms", "model")])

    def variables(self) -> dict[str, str]:
        return {
            name.removeprefix(VARIABLE_PREFIX): value
            for name, value in self.cleaned_data.items()
            if name.startswith(VARIABLE_PREFIX)
        }

    def add_rejection(self, field: str | None, message: str) -> None:
        """Show a service error next to the field it concerns, or above the form."""
        name = VARIABLE_PREFIX + field if field and VARIABLE_PREFIX + field in self.fields else field
        self.add_error(name if name in self.fields else None, message)
