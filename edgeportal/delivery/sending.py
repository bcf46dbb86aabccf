"""One webhook request: sign the body, POST it, never follow a redirect, never wait longer than the timeout.
Plain Python (http.client), no Django: a test calls it against a local server."""

from __future__ import annotations

import hashlib
import hmac
import http.client
import re
import socket
import ssl
import threading
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

SIGNATURE_HEADER = "X-EdgePortal-Signature"
ATTEMPT_HEADER = "X-EdgePortal-Attempt"
IDEMPOTENCY_HEADER = "Idempotency-Key"
USER_AGENT = "EdgePortal-Delivery/1"
# What a receiver answers is read up to this much, for the error an admin sees; the rest is never waited for.
EXCERPT_BYTES = 1024
EXCERPT_CHARS = 200


@dataclass(frozen=True)
class Answer:
    """What came back: status is None when no HTTP answer did (timeout, refused connection, TLS failure)."""

    status: int | None
    error: str = ""  # empty when delivered

    @property
    def delivered(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


def signature(body: bytes, secret: str) -> str:
    """The X-EdgePortal-Signature value: sha256=<hex HMAC-SHA256 of the exact body bytes, keyed by the secret>."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def request_headers(*, body: bytes, secret: str, idempotency_key: str, attempt: int, extra: dict[str, str]) -> dict:
    """The destination's own headers first, then ours (which validation keeps them from naming)."""
    return {
        **extra,
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        IDEMPOTENCY_HEADER: idempotency_key,
        SIGNATURE_HEADER: signature(body, secret),
        ATTEMPT_HEADER: str(attempt),
    }


def post(url: str, *, body: bytes, headers: dict[str, str], timeout_s: float) -> Answer:
    """POST body to url and read the status (and the start of the answer, for errors).

    A redirect is a failure ("redirect not followed"): its target was never checked against the allowed hosts.
    The timeout bounds the whole request, not each read: a receiver that answers a byte at a time is cut off
    too (a timer shuts the socket). No proxy is used (http.client reads no *_PROXY variable); https verifies
    the certificate against the system's CAs (SSL_CERT_FILE / SSL_CERT_DIR add a plant's own CA).
    """
    parts = urlsplit(url)
    if parts.scheme == "https":
        connection = http.client.HTTPSConnection(
            parts.hostname, parts.port, timeout=timeout_s, context=ssl.create_default_context()
        )
    else:
        connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout_s)
    target = urlunsplit(("", "", parts.path or "/", parts.query, ""))
    cut_off = threading.Event()

    def cut() -> None:
        cut_off.set()
        if connection.sock is not None:
            try:
                connection.sock.shutdown(socket.SHUT_RDWR)  # a blocked read returns at once
            except OSError:
                pass

    timer = threading.Timer(timeout_s, cut)
    timer.daemon = True
    timer.start()
    try:
        connection.request("POST", target, body=body, headers=headers)
        response = connection.getresponse()
        excerpt = _start_of(response)
    except TimeoutError:
        return Answer(None, f"no answer within {timeout_s:g} s")
    except ssl.SSLError as error:
        return Answer(None, f"TLS failed: {error}")
    except (OSError, http.client.HTTPException) as error:
        if cut_off.is_set():
            return Answer(None, f"no complete answer within {timeout_s:g} s")
        return Answer(None, f"connection failed: {error or type(error).__name__}")
    finally:
        timer.cancel()
        connection.close()
    if 200 <= response.status < 300:
        return Answer(response.status)
    if 300 <= response.status < 400:
        location = response.getheader("Location", "")
        return Answer(response.status, f"HTTP {response.status}: redirect not followed (to {location[:200]!r})")
    text = re.sub(r"\s+", " ", excerpt.decode("utf-8", "replace")).strip()[:EXCERPT_CHARS]
    return Answer(response.status, f"HTTP {response.status}" + (f": {text}" if text else ""))


def _start_of(response: http.client.HTTPResponse) -> bytes:
    """The first bytes of the answer's body, or none if it breaks off: the status line already said it all."""
    try:
        return response.read(EXCERPT_BYTES)
    except (OSError, http.client.HTTPException):
        return b""
