"""The ASGI application `make run` serves (gunicorn with uvicorn workers). Request bodies are limited
before Django reads them (edgeportal.body_limit).

Two ways into Django. Paths under STREAMING_PREFIXES (the OpenAI-compatible API and the pages' job streams,
which must hold no thread while they wait) go to Django's ASGI handler. Every other request runs Django's
WSGI handler on a thread of a pool (a2wsgi): a short request then stays on one thread from the first
middleware to the response, where the ASGI handler switches threads around each synchronous middleware
method and the view (about 20 switches per submission here; BENCHMARKS.md, web server, compares both).

The pools are small and one per kind of request (ThreadPools): few threads answer a burst sooner, as fewer
requests contend for the interpreter lock at once (BENCHMARKS.md, web server, compares 2 and 16 threads), and a
kind whose requests wait on the database (a held lock makes a writer wait up to its timeout) holds up no other
kind: the health probes least of all, and reads (a job's status, a page's list: in WAL mode, or on PostgreSQL,
they wait on no writer) none behind writes.
"""

import os

from a2wsgi import WSGIMiddleware
from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.asgi import get_asgi_application
from django.core.handlers.asgi import ASGIHandler
from django.core.wsgi import get_wsgi_application
from django.db import connections

from edgeportal.body_limit import BodyLimit

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "edgeportal.settings")

STREAMING_PREFIXES = ("/v1/", "/stream/")
# What systemd, Kubernetes and Prometheus ask: answered on a pool of their own, whatever else waits.
PROBE_PATHS = ("/healthz", "/readyz", "/metrics")
PROBE_THREADS = 2
API_PREFIX = "/api/"
READS = frozenset({"GET", "HEAD", "OPTIONS"})
# Middleware that is sync only and never answers a streaming path: left out of their chain, which Django then
# runs async throughout (one sync middleware, and the whole request would hold a thread while it waits).
NOT_STREAMING = ("whitenoise.middleware.WhiteNoiseMiddleware",)


class StreamingHandler(ASGIHandler):
    """Django's ASGI handler with the streaming paths' middleware chain (NOT_STREAMING left out). It runs each
    request's synchronous code on a thread of the request's own, so it closes that thread's database
    connections when the request ends, whatever DB_CONN_MAX_AGE says: a kept one would outlive its thread."""

    async def handle(self, scope, receive, send):
        try:
            await super().handle(scope, receive, send)
        finally:
            await sync_to_async(connections.close_all)()  # thread-sensitive: on the request's own thread

    def load_middleware(self, is_async=False):
        full = settings.MIDDLEWARE
        settings.MIDDLEWARE = [path for path in full if path not in NOT_STREAMING]
        try:
            super().load_middleware(is_async)
        finally:
            settings.MIDDLEWARE = full


class PathRouter:
    """Streaming paths (and lifespan events) to one application, the rest to the other."""

    def __init__(self, streaming, threaded, prefixes: tuple[str, ...] = STREAMING_PREFIXES):
        self.streaming, self.threaded, self.prefixes = streaming, threaded, prefixes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["path"].startswith(self.prefixes):
            return await self.streaming(scope, receive, send)
        return await self.threaded(scope, receive, send)


class ThreadPools:
    """The WSGI application on pools of threads: the probes; the JSON API (machines) and the pages (people),
    each with a pool for writes and one for reads. A request waiting on the database holds a thread of its
    own pool only: machines polling their jobs' status while every submission thread waits on a held
    database lock are still answered."""

    def __init__(self, wsgi_app, threads: int):
        self.probes = WSGIMiddleware(wsgi_app, workers=PROBE_THREADS)
        self.api = WSGIMiddleware(wsgi_app, workers=threads)
        self.api_reads = WSGIMiddleware(wsgi_app, workers=threads)
        self.pages = WSGIMiddleware(wsgi_app, workers=threads)
        self.page_reads = WSGIMiddleware(wsgi_app, workers=threads)

    def pool_for(self, path: str, method: str = "GET") -> WSGIMiddleware:
        if path in PROBE_PATHS:
            return self.probes
        read = method in READS
        if path.startswith(API_PREFIX):
            return self.api_reads if read else self.api
        return self.page_reads if read else self.pages

    async def __call__(self, scope, receive, send):
        return await self.pool_for(scope["path"], scope.get("method", "GET"))(scope, receive, send)


def threaded(wsgi_app) -> ThreadPools:
    """The WSGI application on its pools, WEB_THREADS threads each for the API's and the pages' writes and
    reads."""
    return ThreadPools(wsgi_app, settings.WEB_THREADS)


django_asgi = get_asgi_application()  # sets Django up
streaming = StreamingHandler()
application = BodyLimit(PathRouter(streaming, threaded(get_wsgi_application())), settings.DATA_UPLOAD_MAX_MEMORY_SIZE)
# Every path through Django's ASGI handler, as before the split: `make bench-web` measures both side by side.
asgi_only = BodyLimit(django_asgi, settings.DATA_UPLOAD_MAX_MEMORY_SIZE)
