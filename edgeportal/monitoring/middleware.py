"""Server-Timing on every response: how long the server spent, apart from the network and the client."""

import time


class ServerTimingMiddleware:
    """First in the chain, so the time covers every other middleware, authentication and the view.

    Browsers' developer tools show it; the overload benchmark reads it to tell a slow 429 apart from a
    slow client or a busy CPU between them."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        started = time.perf_counter()
        response = self.get_response(request)
        response["Server-Timing"] = f"app;dur={(time.perf_counter() - started) * 1000:.1f}"
        return response
