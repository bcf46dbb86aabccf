"""The history filter form: every filter of the latency pages and the CSV export, validated in one place."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django import forms
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from edgeportal.core.labels import LANE_LABELS
from edgeportal.formfields import LocalDateTimeField, StrictIntegerField
from edgeportal.prompts.models import PromptTemplate
from edgeportal.sources.models import Source
from inference.lanes import Lane

# Job.Lane's choices and how a job ends (Job.FINISHED), as latency records keep them: spelt out here, since latency
# sits below jobs (tests/latency/test_views.py holds them to Job's).
LANE_CHOICES = [(lane.value, LANE_LABELS[lane.value]) for lane in Lane]
FINISHED_CHOICES = [("done", _("done")), ("failed", _("failed")), ("expired", _("expired"))]
PERIODS = {"1h": timedelta(hours=1), "24h": timedelta(days=1), "7d": timedelta(days=7), "30d": timedelta(days=30)}
PERIOD_CHOICES = [
    ("1h", _("last hour")), ("24h", _("last 24 hours")), ("7d", _("last 7 days")), ("30d", _("last 30 days")),
    ("all", _("all time")),
]  # fmt: skip
SORT_CHOICES = [
    ("-created_at", _("newest first")),
    ("created_at", _("oldest first")),
    ("-total_ms", _("slowest total first")),
    ("total_ms", _("fastest total first")),
    ("-queue_wait_ms", _("longest queue wait first")),
    ("-window_wait_ms", _("longest window wait first")),
    ("-inference_ms", _("longest inference first")),
    ("-batch_size", _("largest batch first")),
    ("batch_size", _("smallest batch first")),
]
DATETIME_FORMATS = ["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%d %H:%M:%S", "%Y-%m-%d"]
DEFAULTS = {"period": "24h", "sort": "-created_at"}


@dataclass(frozen=True)
class HistoryFilters:
    """What the selectors filter on; None means "any"."""

    start: datetime | None = None
    end: datetime | None = None
    template: PromptTemplate | None = None
    source: Source | None = None
    lane: str | None = None
    status: str | None = None
    batch_size: int | None = None
    worker: str | None = None
    cache_hit: bool | None = None


def _yes_no(value: str) -> bool:
    return value == "yes"


class HistoryFilterForm(forms.Form):
    period = forms.ChoiceField(label=_("Period"), choices=PERIOD_CHOICES, required=False)
    date_from = LocalDateTimeField(
        required=False, label=_("From"), input_formats=DATETIME_FORMATS,
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
    )  # fmt: skip
    date_to = LocalDateTimeField(
        required=False, label=_("To"), input_formats=DATETIME_FORMATS,
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
    )  # fmt: skip
    template = forms.ModelChoiceField(
        label=_("Template"), queryset=PromptTemplate.objects.order_by("slug"), to_field_name="slug", required=False,
        empty_label=_("any"),
    )  # fmt: skip
    source = forms.ModelChoiceField(
        label=_("Source"), queryset=Source.objects.order_by("name"), to_field_name="name", required=False,
        empty_label=_("any"),
    )  # fmt: skip
    lane = forms.ChoiceField(label=_("Lane"), choices=[("", _("any")), *LANE_CHOICES], required=False)
    status = forms.ChoiceField(label=_("Status"), choices=[("", _("any")), *FINISHED_CHOICES], required=False)
    batch_size = StrictIntegerField(label=_("Batch size"), min_value=1, max_value=100_000, required=False)
    worker = forms.CharField(
        label=_("Worker"), max_length=200, required=False, widget=forms.TextInput(attrs={"list": "worker-names"})
    )
    cache_hit = forms.TypedChoiceField(
        choices=[("", _("any")), ("yes", _("cache hits only")), ("no", _("model runs only"))],
        coerce=_yes_no, empty_value=None, required=False, label=_("Cache"),
    )  # fmt: skip
    sort = forms.ChoiceField(label=_("Sort"), choices=SORT_CHOICES, required=False)

    def __init__(self, data=None, **kwargs):
        # Always bound, so a bare URL shows the defaults' results; missing keys take the defaults.
        data = data.copy() if data is not None else {}
        for key, value in DEFAULTS.items():
            if not data.get(key):
                data[key] = value
        super().__init__(data, **kwargs)

    def clean(self):
        cleaned = super().clean()
        start, end = cleaned.get("date_from"), cleaned.get("date_to")
        if start and end and start >= end:
            self.add_error("date_to", _("The end of the range must be after its start."))
        return cleaned

    def filters(self, *, now: datetime | None = None) -> HistoryFilters:
        """The validated filters; From/To, when either is given, replace the period."""
        data = self.cleaned_data
        start, end = data["date_from"], data["date_to"]
        if start is None and end is None and data["period"] in PERIODS:
            start = (now or timezone.now()) - PERIODS[data["period"]]
        return HistoryFilters(
            start=start,
            end=end,
            template=data["template"],
            source=data["source"],
            lane=data["lane"] or None,
            status=data["status"] or None,
            batch_size=data["batch_size"],
            worker=data["worker"] or None,
            cache_hit=data["cache_hit"],
        )

    def ordering(self) -> str:
        return self.cleaned_data["sort"]
