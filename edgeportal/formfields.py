"""Form fields shared by the apps' forms: a whole-number field that parses as strictly as the API, and a JSON
field that refuses what json.loads raises on besides a syntax error."""

from __future__ import annotations

from django import forms
from django.core.exceptions import ValidationError
from django.forms.fields import InvalidJSONInput

from inference.integers import IntegerError, parse_int


class StrictIntegerField(forms.IntegerField):
    """An IntegerField that takes ASCII digits with an optional sign and nothing else.

    Django's own field hands the text to int(), which also takes "٣", "1_000", " 12 " and "12.0". The range
    (min_value, max_value) is then checked by Django's validators, with the field's messages.
    """

    default_error_messages = {"invalid": "Enter a whole number (digits 0-9)."}

    def to_python(self, value):
        if value in self.empty_values:
            return None
        try:
            return parse_int(value if isinstance(value, int) else str(value), field="value")
        except IntegerError:
            raise ValidationError(self.error_messages["invalid"], code="invalid") from None


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
