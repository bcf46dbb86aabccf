"""Which language a request is answered in: the person's choice (the language cookie the header's switcher
sets), else the browser's Accept-Language, for pages; always English for machines, which read codes."""

from __future__ import annotations

from django.conf import settings
from django.middleware.locale import LocaleMiddleware
from django.utils import translation

# Machine interfaces: their error messages stay English whatever the client's Accept-Language says.
MACHINE_PREFIXES = ("/api/", "/v1/", "/metrics", "/healthz", "/readyz")


def is_machine_path(path: str) -> bool:
    return path.startswith(MACHINE_PREFIXES)


class PageLanguageMiddleware(LocaleMiddleware):
    """Django's LocaleMiddleware (cookie, then Accept-Language, then LANGUAGE_CODE) for pages only."""

    def process_request(self, request):
        if is_machine_path(request.path_info):
            translation.activate(settings.LANGUAGE_CODE)  # a thread may still hold the last page's language
            request.LANGUAGE_CODE = settings.LANGUAGE_CODE
            return
        super().process_request(request)

    def process_response(self, request, response):
        if is_machine_path(request.path_info):
            return response
        return super().process_response(request, response)
