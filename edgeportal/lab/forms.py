from django import forms


class TargetForm(forms.Form):
    target_p95_ms = forms.FloatField(
        label="Target p95 (ms)",
        min_value=1,
        max_value=3_600_000,
        widget=forms.NumberInput(attrs={"step": "any"}),
    )
