"""Bodies over the limit are refused before they are read, whatever the path and without a login.

Django's ASGI handler (the streaming API's paths: edgeportal.asgi) reads a request's whole body (into a
temporary file, on disk past FILE_UPLOAD_MAX_MEMORY_SIZE) before any middleware or view runs, so a view's
own limit comes too late to spare the node the disk and the time; its WSGI handler (every other path) reads
what Content-Length declares. This wraps the ASGI application: a declared Content-Length over the limit is
answered 413 at once, and a body that streams past it is cut off at the limit.
"""

from __future__ import annotations

import json


class BodyTooLarge(Exception):
    pass


class BodyLimit:
    def __init__(self, app, limit: int):
        self.app = app
        self.limit = limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope.get("headers") or []).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.limit:
            return await self._refuse(send)
        received, started = 0, False

        async def counted_receive():
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    raise BodyTooLarge
            return message

        async def watched_send(message):
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted_receive, watched_send)
        except BodyTooLarge:
            if not started:
                await self._refuse(send)

    async def _refuse(self, send) -> None:
        message = f"The request body is larger than {self.limit} bytes."
        body = json.dumps({"error": {"code": "too_large", "message": message}}).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 413, "headers": [*headers, (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})
