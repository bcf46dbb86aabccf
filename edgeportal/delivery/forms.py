"""The destination form of the admin: the secret never shown back, output names typed as a list."""

from __future__ import annotations

import secrets

from django import forms
from django.utils.translation import gettext_lazy as _

from edgeportal.delivery.models import MAX_TIMEOUT_S, Destination
from edgeportal.formfields import JSONTextField, StrictIntegerField


class NameListField(forms.CharField):
    """Names separated by commas or spaces ("ticket, mes"), cleaned to a list; shown back the same way."""

    def prepare_value(self, value):
        if isinstance(value, list):
            return ", ".join(str(name) for name in value)
        return value

    def to_python(self, value):
        text = super().to_python(value)
        return [name for name in text.replace(",", " ").split() if name]


class DestinationForm(forms.ModelForm):
    secret = forms.CharField(
        label=_("secret"),
        required=False,
        strip=True,
        max_length=200,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text=_(
            "Key of the X-EdgePortal-Signature header (sha256=<hex HMAC-SHA256 of the body>). Never shown again: "
            "leave empty to keep the current one; a new destination left empty gets a random one, shown once."
        ),
    )
    output_names = NameListField(
        label=_("outputs"),
        required=False,
        help_text=_("The outputs it receives, by name, separated by commas (e.g. ticket, mes); empty: all."),
    )
    headers = JSONTextField(
        label=_("headers"),
        required=False,
        initial=dict,
        help_text=_('Sent with each request, as a JSON object, e.g. {"Authorization": "Bearer ..."}.'),
    )
    timeout_s = StrictIntegerField(
        label=_("timeout (s)"),
        min_value=1,
        max_value=MAX_TIMEOUT_S,
        initial=5,
        help_text=_("Seconds to wait for the whole answer, 1 to 30; longer counts as a failed attempt."),
    )

    class Meta:
        model = Destination
        fields = ["name", "url", "secret", "headers", "timeout_s", "output_names", "templates", "sources", "is_active"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.generated_secret = ""

    def clean_secret(self) -> str:
        secret = self.cleaned_data.get("secret", "")
        if secret:
            return secret
        if self.instance.pk:
            return self.instance.secret  # left empty: unchanged
        self.generated_secret = secrets.token_urlsafe(32)
        return self.generated_secret

    def clean_headers(self) -> dict:
        headers = self.cleaned_data.get("headers")
        return {} if headers in (None, "") else headers
