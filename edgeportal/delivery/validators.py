"""Checks of a destination's fields, raised as form errors in the admin (never a 500)."""

from __future__ import annotations

import re

from django.conf import settings
from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

from edgeportal.delivery.addresses import url_refusal

MAX_HEADERS = 20
MAX_HEADER_VALUE_CHARS = 1000
# RFC 9110 token characters: anything else is not a header name http.client will send.
HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]{1,100}")
# Printable ASCII and tabs: http.client sends values as Latin-1, and CR/LF would start another header.
HEADER_VALUE = re.compile(r"[\t\x20-\x7e]*")
# Set by the node for every request, or by HTTP itself: a destination may not override them (the signature and
# the idempotency key are what receivers trust; hop-by-hop headers and Host belong to the connection).
RESERVED_HEADERS = {
    "host", "content-length", "content-type", "transfer-encoding", "connection", "keep-alive", "te", "trailer",
    "upgrade", "expect", "proxy-authorization", "proxy-authenticate", "proxy-connection", "user-agent",
    "idempotency-key",
}  # fmt: skip
RESERVED_PREFIX = "x-edgeportal-"
# The output names templates may declare (edgeportal/prompts/output_spec.py NAME, which matches only whole names).
OUTPUT_NAME = re.compile(r"[a-z][a-z0-9_-]{0,39}")

URL_MESSAGES = {
    "malformed": _("Enter a valid URL, such as https://mes-gateway.plant.local/hooks/edgeportal."),
    "scheme": _("This scheme is not allowed here; allowed: %(schemes)s (EDGE_DELIVERY_ALLOWED_SCHEMES)."),
    "credentials": _("Remove the user name and password from the URL; send credentials in a header instead."),
    "host": _("This host is not allowed (EDGE_DELIVERY_ALLOWED_HOSTS: %(hosts)s). Ask whoever runs the node."),
}


def validate_webhook_url(url: str) -> None:
    """The URL's scheme and host must be allowed by the node's settings (checked again at each send)."""
    refusal = url_refusal(
        url, schemes=settings.EDGE_DELIVERY_ALLOWED_SCHEMES, hosts=settings.EDGE_DELIVERY_ALLOWED_HOSTS
    )
    if refusal is not None:
        params = {
            "schemes": ", ".join(settings.EDGE_DELIVERY_ALLOWED_SCHEMES) or _("none"),
            "hosts": ", ".join(settings.EDGE_DELIVERY_ALLOWED_HOSTS) or _("none set"),
        }
        raise ValidationError(URL_MESSAGES[refusal.code], code=f"url_{refusal.code}", params=params)


def validate_headers(headers: object) -> None:
    """A JSON object of at most MAX_HEADERS header names to text values, none of them reserved."""
    if not isinstance(headers, dict):
        raise ValidationError(_('Headers must be a JSON object, e.g. {"Authorization": "Bearer ..."}.'), code="type")
    if len(headers) > MAX_HEADERS:
        raise ValidationError(_("At most %(count)d headers."), code="count", params={"count": MAX_HEADERS})
    seen: set[str] = set()
    for name, value in headers.items():
        lowered = name.lower()
        if not HEADER_NAME.fullmatch(name):
            raise ValidationError(_("%(name)r is not a header name."), code="name", params={"name": name})
        if lowered in RESERVED_HEADERS or lowered.startswith(RESERVED_PREFIX):
            raise ValidationError(
                _("%(name)s is set by EdgePortal itself and cannot be overridden."),
                code="reserved",
                params={"name": name},
            )
        if lowered in seen:
            raise ValidationError(_("%(name)s is given twice."), code="twice", params={"name": name})
        seen.add(lowered)
        if not isinstance(value, str) or not HEADER_VALUE.fullmatch(value) or len(value) > MAX_HEADER_VALUE_CHARS:
            raise ValidationError(
                _("The value of %(name)s must be text of printable ASCII characters, at most %(limit)d."),
                code="value",
                params={"name": name, "limit": MAX_HEADER_VALUE_CHARS},
            )


def validate_output_names(names: object) -> None:
    """A JSON list of output names as templates declare them (lower case, digits, - and _); empty: all."""
    if not isinstance(names, list) or not all(isinstance(name, str) and OUTPUT_NAME.fullmatch(name) for name in names):
        raise ValidationError(
            _('Output names must be a list of names as templates declare them, e.g. ["ticket", "mes"].'),
            code="output_names",
        )
