"""The ASGI entry: streaming paths to Django's ASGI handler, the rest to its WSGI handler on a thread of
the request's own."""

import asyncio
import threading

import h11
import pytest
from django.core.signals import request_finished

from edgeportal.asgi import PathRouter, ThreadPools, threaded


def scope(path: str, kind: str = "http") -> dict:
    return {"type": kind, "path": path}


def test_streaming_paths_and_lifespan_go_to_the_asgi_handler_the_rest_to_the_threaded_one():
    seen = []

    async def streaming(scope, receive, send):
        seen.append(("streaming", scope.get("path")))

    async def threaded(scope, receive, send):
        seen.append(("threaded", scope["path"]))

    router = PathRouter(streaming, threaded, prefixes=("/v1/",))
    for path in ("/v1/chat/completions", "/api/jobs", "/jobs/new/", "/v1"):
        asyncio.run(router(scope(path), None, None))
    asyncio.run(router({"type": "lifespan"}, None, None))
    assert seen == [
        ("streaming", "/v1/chat/completions"), ("threaded", "/api/jobs"), ("threaded", "/jobs/new/"),
        ("threaded", "/v1"), ("streaming", None),
    ]  # fmt: skip


def test_a_request_waiting_on_the_database_holds_up_no_other():
    release = threading.Event()

    def wsgi_app(environ, start_response):
        if environ["PATH_INFO"] == "/slow":
            release.wait(5)  # as on a table lock
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [environ["PATH_INFO"].encode()]

    app = threaded(wsgi_app)

    async def both():
        slow = asyncio.create_task(call(app, "/slow"))
        fast = await asyncio.wait_for(call(app, "/fast"), 3)  # answered while /slow still waits
        release.set()
        return fast, await slow

    (fast_status, _, fast_body), (slow_status, _, slow_body) = asyncio.run(both())
    assert (fast_status, fast_body, slow_status, slow_body) == (200, b"/fast", 200, b"/slow")


def test_probes_the_api_and_pages_run_on_pools_of_their_own_one_for_writes_one_for_reads():
    pools = ThreadPools(lambda environ, start_response: [], threads=2)
    assert [pools.pool_for(path) for path in ("/healthz", "/readyz", "/metrics")] == [pools.probes] * 3
    routes = [("/api/jobs", "POST"), ("/api/jobs/7", "DELETE"), ("/api/jobs/7", "GET"), ("/api/jobs", "HEAD"),
              ("/jobs/new/", "POST"), ("/healthz/x", "PUT"), ("/jobs/", "GET"), ("/jobs/7/", "OPTIONS")]  # fmt: skip
    expected = [pools.api] * 2 + [pools.api_reads] * 2 + [pools.pages] * 2 + [pools.page_reads] * 2
    assert [pools.pool_for(path, method) for path, method in routes] == expected
    sizes = {pool.executor._max_workers for pool in (pools.api, pools.api_reads, pools.pages, pools.page_reads)}
    assert sizes == {2} and len({id(pool) for pool in vars(pools).values()}) == 5


def test_while_every_submission_thread_waits_on_the_database_a_jobs_status_is_still_answered():
    release = threading.Event()

    def wsgi_app(environ, start_response):
        if environ["REQUEST_METHOD"] == "POST":
            release.wait(5)  # as writers on a held database lock
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [environ["REQUEST_METHOD"].encode() + environ["PATH_INFO"].encode()]

    app = ThreadPools(wsgi_app, threads=1)

    async def submissions_then_status():
        waiting = [asyncio.create_task(call(app, path, method="POST")) for path in ("/api/jobs", "/jobs/new/")]
        await asyncio.sleep(0.2)
        status = await asyncio.wait_for(call(app, "/api/jobs/7"), 3)  # answered while the writes' pools are full
        page = await asyncio.wait_for(call(app, "/jobs/"), 3)
        stuck = not any(task.done() for task in waiting)
        release.set()
        return status, page, stuck, await asyncio.gather(*waiting)

    status, page, stuck, waited = asyncio.run(submissions_then_status())
    assert (status[0], status[2], page[0], page[2], stuck) == (200, b"GET/api/jobs/7", 200, b"GET/jobs/", True)
    assert [answer[2] for answer in waited] == [b"POST/api/jobs", b"POST/jobs/new/"]


def test_while_every_api_and_page_thread_waits_on_the_database_the_probes_still_answer():
    release = threading.Event()

    def wsgi_app(environ, start_response):
        if environ["PATH_INFO"] != "/healthz":
            release.wait(5)  # as writers on a held database lock
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [environ["PATH_INFO"].encode()]

    app = ThreadPools(wsgi_app, threads=1)
    WAITING = [("/api/jobs", "POST"), ("/api/jobs/7", "GET"), ("/jobs/new/", "POST"), ("/jobs/", "GET"),
               ("/api/templates", "GET")]  # fmt: skip

    async def waiting_then_probe():
        waiting = [asyncio.create_task(call(app, path, method=method)) for path, method in WAITING]
        await asyncio.sleep(0.2)
        probe = await asyncio.wait_for(call(app, "/healthz"), 3)  # answered while both pools are full
        stuck = not any(task.done() for task in waiting)
        release.set()
        return probe, stuck, await asyncio.gather(*waiting)

    (status, _, body), stuck, waited = asyncio.run(waiting_then_probe())
    assert (status, body, stuck) == (200, b"/healthz", True)
    assert [answer[2] for answer in waited] == [path.encode() for path, _ in WAITING]


async def call(app, path: str, headers: tuple = (), method: str = "GET") -> tuple[int, list, bytes]:
    """Ask for a path through an ASGI application, as uvicorn hands it a request: status, headers, body."""
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method, "scheme": "http",
        "path": path, "raw_path": path.encode(), "query_string": b"",
        "headers": [(b"host", b"127.0.0.1"), *headers], "client": ("127.0.0.1", 1234), "server": ("127.0.0.1", 8000),
    }  # fmt: skip
    sent = []

    requests = [{"type": "http.request", "body": b"", "more_body": False}]

    async def receive():
        if requests:
            return requests.pop()
        await asyncio.Event().wait()  # the client stays connected: the server stops listening once it answers

    async def send(message):
        sent.append(message)

    await app(scope, receive, send)
    start = next(m for m in sent if m["type"] == "http.response.start")
    return start["status"], start["headers"], b"".join(m.get("body", b"") for m in sent[1:])


@pytest.mark.django_db(transaction=True)
def test_a_request_through_the_application_ends_as_django_expects():
    # asgiref's WsgiToAsgi, tried first, never closed the response: request_finished never fired, and
    # every request left its database connection open (PostgreSQL: "too many clients" within seconds).
    finished = []
    request_finished.connect(lambda sender, **_: finished.append(sender), weak=False, dispatch_uid="test_asgi")
    try:
        status, _, _ = served("/login/")
    finally:
        request_finished.disconnect(dispatch_uid="test_asgi")
    assert status == 200 and finished


def served(path: str, headers: tuple = ()) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    """GET a path through the real ASGI application."""
    from edgeportal.asgi import application

    return asyncio.run(call(application, path, headers))


@pytest.mark.django_db(transaction=True)
def test_a_page_that_sets_a_cookie_has_headers_the_http_server_accepts():
    # Found by bench-web: through the WSGI handler every Set-Cookie value began with a space, which h11
    # (uvicorn's HTTP layer) refuses, so the login page got no answer at all.
    status, headers, body = served("/login/")
    assert status == 200 and b"csrfmiddlewaretoken" in body
    cookies = [value for name, value in headers if name.lower() == b"set-cookie"]
    assert cookies and all(value == value.strip() for value in cookies)
    h11.Response(status_code=status, headers=headers)  # raises on a value h11 would refuse


def test_the_streaming_paths_middleware_is_async_throughout_so_a_wait_holds_no_thread(settings, caplog):
    """Django adapts (and runs in a thread, for the whole request) each sync-only middleware of an async
    chain: the streaming handler's has none, the full chain has WhiteNoise."""
    from django.core.handlers.asgi import ASGIHandler

    from edgeportal.asgi import StreamingHandler

    settings.DEBUG = True  # Django says what it adapts only then
    with caplog.at_level("DEBUG", logger="django.request"):
        StreamingHandler().load_middleware(is_async=True)
    assert not [r for r in caplog.records if "adapted" in r.getMessage()]
    with caplog.at_level("DEBUG", logger="django.request"):
        ASGIHandler().load_middleware(is_async=True)
    assert any("WhiteNoise" in r.getMessage() for r in caplog.records if "adapted" in r.getMessage())


@pytest.fixture
def kept_connections():
    """Database connections kept 60 s, as under gunicorn (edgeportal/gunicorn.conf.py); yields the list of
    connections opened meanwhile by the threads that serve requests (not the test's own)."""
    from django.db import connections
    from django.db.backends.signals import connection_created

    opened, test_thread = [], threading.get_ident()

    def created(sender, connection, **_):
        if threading.get_ident() != test_thread:
            opened.append(connection)

    connection_created.connect(created, weak=False, dispatch_uid="kept")
    saved = connections.settings["default"]["CONN_MAX_AGE"]
    connections.settings["default"]["CONN_MAX_AGE"] = 60
    try:
        yield opened
    finally:
        connections.settings["default"]["CONN_MAX_AGE"] = saved
        connection_created.disconnect(dispatch_uid="kept")


def bearer(token: str) -> tuple:
    return ((b"authorization", f"Bearer {token}".encode()),)


@pytest.mark.django_db(transaction=True)
def test_a_thread_of_the_pool_keeps_its_database_connection_from_one_request_to_the_next(kept_connections):
    from a2wsgi import WSGIMiddleware
    from django.core.wsgi import get_wsgi_application
    from django.db import connections

    from edgeportal.sources.services import source_create

    _, token = source_create(name="plc", kind="mes")
    app = WSGIMiddleware(get_wsgi_application(), workers=1)  # threaded(), on one thread
    try:
        answers = [asyncio.run(call(app, "/api/templates", bearer(token)))[0] for _ in range(3)]
        assert answers == [200, 200, 200]
        assert len(kept_connections) == 1 and kept_connections[0].connection is not None
    finally:
        app.executor.submit(connections.close_all).result()
        app.executor.shutdown()


@pytest.mark.django_db(transaction=True)
def test_a_streaming_request_closes_its_database_connection_at_its_end_whatever_is_kept(kept_connections):
    # Its thread is its own (Django's ASGI handler): a kept connection would outlive the request, and on
    # PostgreSQL every stream would leave a server process behind until the garbage collector ran.
    from edgeportal.sources.services import source_create

    _, token = source_create(name="tool", kind="mes")
    for _ in range(2):
        status, _, body = served("/v1/models", bearer(token))
        assert status == 200 and b'"object": "list"' in body
    assert kept_connections and all(c.connection is None for c in kept_connections)
