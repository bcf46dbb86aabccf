"""The tuning form: one field per scheduler setting, with its range in the help text and in the error."""

from django import forms
from django.utils.translation import gettext as _

from edgeportal.formfields import StrictIntegerField
from inference.settings import SETTINGS


def _field(name: str) -> forms.Field:
    setting = SETTINGS[name]
    unit = f" {_(setting.unit)}" if setting.unit else ""
    if name == "adaptive_window":
        return forms.TypedChoiceField(label=_(setting.label), coerce=int, choices=[(0, _("off")), (1, _("on"))])
    outside = _("Must be between %(low)s and %(high)s%(unit)s.") % {
        "low": setting.low,
        "high": setting.high,
        "unit": unit,
    }
    # Django formats the range messages with %-style params: a literal % (long_share_pct) must be doubled.
    formatted = outside.replace("%", "%%")
    return StrictIntegerField(
        label=_(setting.label),
        min_value=setting.low,
        max_value=setting.high,
        help_text=_("%(low)s to %(high)s%(unit)s, default %(default)s")
        % {"low": setting.low, "high": setting.high, "unit": unit, "default": setting.default},
        error_messages={
            "min_value": formatted,
            "max_value": formatted,
            "invalid": _("Enter a whole number. %(range)s") % {"range": outside},
        },
    )


class TuningForm(forms.Form):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for name in SETTINGS:
            self.fields[name] = _field(name)

    def clean(self):
        data = super().clean()
        longest = data.get("max_deadline_ms")
        for name in ("default_deadline_ms", "long_deadline_ms"):
            deadline = data.get(name)
            if deadline is not None and longest is not None and deadline > longest:
                self.add_error(name, _("A default deadline cannot be longer than the longest deadline."))
        return data
