"""Server-Timing on every response: how long the server spent, apart from the network and the client."""

import time

from asgiref.sync import iscoroutinefunction, markcoroutinefunction


class ServerTimingMiddleware:
    """First in the chain, so the time covers every other middleware, authentication and the view.

    Browsers' developer tools show it; the overload benchmark reads it to tell a slow 429 apart from a
    slow client or a busy CPU between them. Sync and async: the streaming paths' chain is async throughout
    (edgeportal.asgi)."""

    sync_capable = async_capable = True

    def __init__(self, get_response):
        self.get_response = get_response
        if iscoroutinefunction(get_response):
            markcoroutinefunction(self)

    def __call__(self, request):
        if iscoroutinefunction(self):
            return self._acall(request)
        started = time.perf_counter()
        return _timed(self.get_response(request), started)

    async def _acall(self, request):
        started = time.perf_counter()
        return _timed(await self.get_response(request), started)


def _timed(response, started: float):
    response["Server-Timing"] = f"app;dur={(time.perf_counter() - started) * 1000:.1f}"
    return response
