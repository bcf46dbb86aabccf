"""The admin's template editor form, and sample values for its live preview."""

from django import forms
from django.conf import settings
from django.utils.translation import gettext_lazy as _

from edgeportal.formfields import JSONTextField, StrictIntegerField
from edgeportal.prompts.models import PromptTemplate
from edgeportal.prompts.variables import Variable


class TemplateForm(forms.ModelForm):
    max_new_tokens = StrictIntegerField(label=_("Max new tokens"), initial=32)  # its range: PromptTemplate.clean
    # Both optional: left empty, the node's default (EDGE_NO_REPEAT_NGRAM, EDGE_REPETITION_PENALTY).
    no_repeat_ngram = StrictIntegerField(
        label=_("No repeated run of"),
        required=False,
        initial=settings.EDGE_NO_REPEAT_NGRAM,
        help_text=PromptTemplate._meta.get_field("no_repeat_ngram").help_text,
    )
    repetition_penalty = forms.FloatField(
        label=_("Repetition penalty"),
        required=False,
        initial=settings.EDGE_REPETITION_PENALTY,
        help_text=PromptTemplate._meta.get_field("repetition_penalty").help_text,
    )
    copy_bias = forms.FloatField(
        label=_("Copy bias"),
        required=False,
        initial=settings.EDGE_COPY_BIAS,
        help_text=PromptTemplate._meta.get_field("copy_bias").help_text,
    )
    variables = JSONTextField(
        label=_("Variables"),
        required=False,
        initial=list,
        widget=forms.Textarea(attrs={"rows": 4}),
        help_text=PromptTemplate._meta.get_field("variables").help_text,
    )
    outputs = JSONTextField(
        label=_("Outputs"),
        required=False,
        initial=list,
        widget=forms.Textarea(attrs={"rows": 4}),
        help_text=PromptTemplate._meta.get_field("outputs").help_text,
    )
    candidates = StrictIntegerField(
        label=_("Candidates"),
        required=False,
        initial=1,
        help_text=PromptTemplate._meta.get_field("candidates").help_text,
    )
    semantic_cache = forms.FloatField(
        label=_("Semantic cache threshold"),
        required=False,
        help_text=PromptTemplate._meta.get_field("semantic_cache").help_text,
    )
    sample = JSONTextField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
        label=_("Sample values"),
        help_text=_('Values for the preview and "Try it", e.g. {"line": "A"}; missing ones are made up.'),
    )

    class Meta:
        model = PromptTemplate
        fields = [
            "slug", "title", "description", "body", "system_prompt", "language", "max_new_tokens", "variables",
            "outputs", "no_repeat_ngram", "repetition_penalty", "copy_bias", "candidates", "semantic_cache", "sources",
            "managers_may_use", "model",
        ]  # fmt: skip
        widgets = {
            "description": forms.Textarea(attrs={"rows": 2}),
            "body": forms.Textarea(attrs={"rows": 4}),
            "system_prompt": forms.Textarea(attrs={"rows": 2}),
        }

    def clean_variables(self):
        return self.cleaned_data.get("variables") or []

    def clean_outputs(self):
        return self.cleaned_data.get("outputs") or []

    def clean_no_repeat_ngram(self):
        value = self.cleaned_data.get("no_repeat_ngram")
        return settings.EDGE_NO_REPEAT_NGRAM if value is None else value

    def clean_candidates(self):
        value = self.cleaned_data.get("candidates")
        return 1 if value is None else value

    def clean_copy_bias(self):
        value = self.cleaned_data.get("copy_bias")
        return settings.EDGE_COPY_BIAS if value is None else value

    def clean_repetition_penalty(self):
        value = self.cleaned_data.get("repetition_penalty")
        return settings.EDGE_REPETITION_PENALTY if value is None else value


def sample_values(spec: list[Variable], given: object) -> dict[str, object]:
    """The admin's sample values, completed with a plausible value for every variable left out."""
    values = dict(given) if isinstance(given, dict) else {}
    for variable in spec:
        if variable.name in values:
            continue
        if variable.type == "choice":
            values[variable.name] = variable.choices[0]
        elif variable.type == "integer":
            values[variable.name] = variable.min if variable.min is not None else 1
        else:
            values[variable.name] = variable.name.replace("_", " ")
    return values
