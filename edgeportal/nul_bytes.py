"""No form field or query parameter accepts a NUL character, and PostgreSQL cannot even compare one: a
lookup with it raises instead of finding nothing. Refuse such a request whole, with a 400 that names the
field, before any view builds a query from it."""

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.http import HttpResponseBadRequest
from django.utils.translation import gettext as _


def nul_field(query_dicts) -> str | None:
    """The first field name (or value's field) holding a NUL, or None."""
    for params in query_dicts:
        for name, values in params.lists():
            if "\x00" in name or any("\x00" in value for value in values):
                return name.replace("\x00", "\\0")
    return None


class RejectNulMiddleware:
    """Sync and async: the streaming paths' chain is async throughout (edgeportal.asgi)."""

    sync_capable = async_capable = True

    def __init__(self, get_response):
        self.get_response = get_response
        if iscoroutinefunction(get_response):
            markcoroutinefunction(self)

    def __call__(self, request):
        if iscoroutinefunction(self):
            return self._acall(request)
        return self._refusal(request) or self.get_response(request)

    async def _acall(self, request):
        return self._refusal(request) or await self.get_response(request)

    @staticmethod
    def _refusal(request):
        # request.POST parses only form bodies; a JSON body is left for the API's own validation.
        field = nul_field([request.GET, request.POST] if request.method == "POST" else [request.GET])
        if field is None:
            return None
        return HttpResponseBadRequest(
            _("Field %(field)r contains a NUL character, which no field accepts.") % {"field": field},
            content_type="text/plain; charset=utf-8",
        )
