"""The ASGI application refuses an oversized body before Django reads it (no login needed to try)."""

import asyncio
import json

import pytest
from django.conf import settings

from edgeportal.asgi import application

LIMIT = settings.DATA_UPLOAD_MAX_MEMORY_SIZE


def post(chunks: list[bytes], *, declared: int | None = None, token: str = "") -> tuple[int, dict, int]:
    """POST /api/jobs through the ASGI application; returns the status, the JSON body and how many chunks
    the application read."""
    headers = [(b"host", b"127.0.0.1"), (b"content-type", b"application/json")]
    if token:
        headers.append((b"authorization", f"Bearer {token}".encode()))
    if declared is not None:
        headers.append((b"content-length", str(declared).encode()))
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
        "path": "/api/jobs", "raw_path": b"/api/jobs", "query_string": b"", "headers": headers,
        "client": ("127.0.0.1", 1234), "server": ("127.0.0.1", 8000),
    }  # fmt: skip
    read, sent = 0, []

    async def receive():
        nonlocal read
        if read < len(chunks):
            read += 1
            return {"type": "http.request", "body": chunks[read - 1], "more_body": read < len(chunks)}
        await asyncio.Event().wait()  # the client stays connected until the answer comes

    async def send(message):
        sent.append(message)

    asyncio.run(application(scope, receive, send))
    status = next(m["status"] for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return status, json.loads(body), read


def test_a_declared_length_over_the_limit_is_refused_without_reading_the_body():
    status, body, read = post([b"x" * 1024] * 4, declared=LIMIT + 1)
    assert status == 413 and body["error"]["code"] == "too_large" and read == 0


@pytest.mark.django_db(transaction=True)
def test_a_body_streamed_without_a_length_is_never_read_past_the_limit(source_token):
    chunk = b"x" * (1 << 20)
    status, body, read = post([chunk] * 100, token=source_token)  # 100 MB announced by no header
    assert status in (400, 413) and read <= LIMIT // len(chunk) + 1  # nothing after the chunk that crossed it
    assert body["error"]["code"] in ("too_large", "empty_body")


def test_a_body_within_the_limit_reaches_the_view():
    status, body, _ = post([b'{"prompt": "hi"}'], declared=16)
    assert status == 401 and body["error"]["code"] == "unauthorized"  # the view answered: no token
