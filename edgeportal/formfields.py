"""Form fields shared by the apps' forms: a whole-number field that parses as strictly as the API, and a JSON
field that refuses what json.loads raises on besides a syntax error."""

from __future__ import annotations

import re
from datetime import UTC
from decimal import Decimal

from django import forms
from django.core.exceptions import ValidationError
from django.forms.fields import InvalidJSONInput
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from inference.integers import IntegerError, parse_int


class StrictIntegerField(forms.IntegerField):
    """An IntegerField that takes ASCII digits with an optional sign and nothing else.

    Django's own field hands the text to int(), which also takes "٣", "1_000", " 12 " and "12.0". The range
    (min_value, max_value) is then checked by Django's validators, with the field's messages.
    """

    default_error_messages = {"invalid": _("Enter a whole number (digits 0-9).")}

    def to_python(self, value):
        if value in self.empty_values:
            return None
        try:
            return parse_int(value if isinstance(value, int) else str(value), field="value")
        except IntegerError:
            raise ValidationError(self.error_messages["invalid"], code="invalid") from None


class SecondsField(forms.Field):
    """A duration in seconds as people type it ("2", "2.5", "0.75"), in ASCII digits with at most three
    decimals, more than 0 and at most max_seconds; cleaned to a Decimal (exact, so ms are whole)."""

    PATTERN = re.compile(r"[0-9]{1,7}(\.[0-9]{1,3})?")
    default_error_messages = {
        "invalid": _("Enter seconds as digits 0-9, with at most three decimals (for example 2.5)."),
        "range": _("Enter more than 0 and at most %(max)s seconds."),
    }

    def __init__(self, *, max_seconds: float = 86_400, **kwargs):
        super().__init__(widget=forms.TextInput(attrs={"inputmode": "decimal"}), **kwargs)
        self.max_seconds = max_seconds

    def to_python(self, value):
        text = "" if value in self.empty_values else str(value).strip()
        if not text:
            return None
        if not self.PATTERN.fullmatch(text):
            raise ValidationError(self.error_messages["invalid"], code="invalid")
        seconds = Decimal(text)
        if not 0 < seconds <= Decimal(str(self.max_seconds)):
            raise ValidationError(self.error_messages["range"], code="range", params={"max": f"{self.max_seconds:g}"})
        return seconds


class LocalDateTimeField(forms.DateTimeField):
    """A date and time on the plant's wall clock (the current time zone). Django refuses both a time the clocks
    skip and one they pass twice; here only the skipped one is refused, and a repeated one (the autumn's
    02:30) means its first occurrence, as a person reading the clock would."""

    default_error_messages = {
        "skipped": _("%(value)s does not exist in %(zone)s: the clocks skip it (daylight saving time)."),
    }

    def to_python(self, value):
        with timezone.override(UTC):  # parse the digits as they are; the zone is applied below
            parsed = super().to_python(value)
        if parsed is None:
            return None
        zone = timezone.get_current_timezone()
        naive = parsed.replace(tzinfo=None)
        local = naive.replace(tzinfo=zone)  # fold=0: the first of a repeated hour
        if local.astimezone(UTC).astimezone(zone).replace(tzinfo=None) != naive:
            raise ValidationError(
                self.error_messages["skipped"], code="skipped", params={"value": naive, "zone": str(zone)}
            )
        return local.astimezone(UTC)  # an exact moment (PEP 495: an ambiguous local time compares unequal)


class JSONTextField(forms.JSONField):
    """Django's JSONField, except that JSON too deeply nested or with an integer of over 4300 digits is a form
    error (json.loads raises RecursionError or a plain ValueError for those, which Django lets through)."""

    def to_python(self, value):
        try:
            return super().to_python(value)
        except (RecursionError, ValueError):
            raise ValidationError(self.error_messages["invalid"], code="invalid", params={"value": value}) from None

    def bound_data(self, data, initial):
        try:
            return super().bound_data(data, initial)
        except (RecursionError, ValueError):
            return InvalidJSONInput(data)
