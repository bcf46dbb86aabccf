"""The lab page's form: the p95 target the recommended window must meet."""

from django import forms
from django.utils.translation import gettext_lazy as _

from edgeportal.formfields import StrictIntegerField


class TargetForm(forms.Form):
    target_p95_ms = StrictIntegerField(label=_("Target p95 (ms)"), min_value=1, max_value=3_600_000)
