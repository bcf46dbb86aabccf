"""Create sources and check their bearer tokens."""

import copy
import hashlib
import secrets

from django.core.exceptions import ValidationError
from django.utils.translation import gettext as _

from edgeportal.core.lookups import cached_lookup
from edgeportal.sources.models import Source


def token_hash(token: str) -> str:
    # Tokens are 256-bit random strings, so a plain SHA-256 is enough (no password stretching needed).
    return hashlib.sha256(token.encode()).hexdigest()


def source_create(*, name: str, kind: str = Source.Kind.MES) -> tuple[Source, str]:
    """Returns the source and its token; the token itself is never stored."""
    name = name.strip()
    if not name:
        raise ValidationError(_("A source needs a name."))
    if kind not in Source.Kind.values:
        raise ValidationError(
            _("Unknown source kind %(kind)r; choose one of %(kinds)s.")
            % {"kind": kind, "kinds": ", ".join(Source.Kind.values)}
        )
    if Source.objects.filter(name=name).exists():
        raise ValidationError(_("A source named %(name)r already exists.") % {"name": name})
    token = secrets.token_urlsafe(32)
    source = Source.objects.create(name=name, kind=kind, token_hash=token_hash(token))
    return source, token


def source_rotate_token(*, source: Source) -> str:
    """A new token for the source (saved too if it is new); the old one stops working at once."""
    token = secrets.token_urlsafe(32)
    source.token_hash = token_hash(token)
    source.save(update_fields=["token_hash"] if source.pk else None)
    return token


def source_authenticate(*, authorization: str) -> Source | None:
    """The active source behind an 'Authorization: Bearer <token>' header, or None."""
    scheme, _space, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    hashed = token_hash(token.strip())
    source = cached_lookup(
        ("source", hashed),
        lambda: Source.objects.filter(token_hash=hashed, is_active=True).first(),
        keep=lambda found: found is not None,
    )
    return copy.copy(source)  # each request its own: the kept one is shared by the process' threads
