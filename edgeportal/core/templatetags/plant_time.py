"""Times on the pages: the plant's local time (EDGE_TIME_ZONE), its zone named, the exact moment kept."""

from __future__ import annotations

from datetime import datetime

from django import template
from django.utils.dateformat import format as date_format
from django.utils.html import format_html
from django.utils.timezone import localtime

register = template.Library()

FORMATS = {"seconds": "Y-m-d H:i:s", "minutes": "Y-m-d H:i", "precise": "H:i:s.u"}


@register.filter
def local(value: datetime | None, precision: str = "seconds"):
    """A <time> element: the local wall-clock time with the zone's abbreviation (CST, CET, UTC), its full
    name and ISO 8601 moment (with offset) in the element for tooltips, screen readers and copy-paste."""
    if not value:
        return "—"
    moment = localtime(value)
    offset = moment.strftime("%z")  # +0800
    return format_html(
        '<time datetime="{}" title="{}, UTC{}:{}">{} {}</time>',
        moment.isoformat(),
        str(moment.tzinfo),
        offset[:3],
        offset[3:],
        date_format(moment, FORMATS[precision]),
        moment.tzname(),
    )
