"""One webhook request against a real local HTTP server: signed, keyed, never redirected, never too long."""

import hashlib
import hmac
import json
import socket
import threading
import time

from edgeportal.delivery.sending import post, request_headers, signature
from tests.delivery.conftest import SECRET

BODY = json.dumps({"job_id": 1, "output": "ticket", "text": "A 线卡料"}, ensure_ascii=False).encode()


def headers(**extra):
    return request_headers(body=BODY, secret=SECRET, idempotency_key="job-1-ticket-dest-1-abc", attempt=2,
                           extra=extra)  # fmt: skip


def test_the_signature_is_the_hex_hmac_sha256_of_the_exact_body_with_the_secret():
    expected = hmac.new(SECRET.encode(), BODY, hashlib.sha256).hexdigest()
    assert signature(BODY, SECRET) == f"sha256={expected}"
    assert signature(BODY + b" ", SECRET) != signature(BODY, SECRET)
    assert signature(BODY, "another") != signature(BODY, SECRET)


def test_a_post_carries_the_body_its_signature_the_key_the_attempt_and_the_destinations_headers(receiver):
    server = receiver()
    answer = post(server.url + "?line=a", body=BODY, headers=headers(Authorization="Bearer xyz"), timeout_s=2)
    assert answer.delivered and answer.status == 200 and answer.error == ""
    [request] = server.requests
    assert request["signature_ok"]
    assert request["key"] == "job-1-ticket-dest-1-abc"
    assert request["attempt"] == "2"
    assert request["path"] == "/hooks/edgeportal?line=a"
    assert request["content_type"] == "application/json"
    assert request["user_agent"].startswith("EdgePortal")
    assert request["authorization"] == "Bearer xyz"
    assert request["body"]["text"] == "A 线卡料"


def test_a_redirect_is_not_followed_and_counts_as_a_failure(receiver):
    server = receiver(mode="redirect")
    answer = post(server.url, body=BODY, headers=headers(), timeout_s=2)
    assert not answer.delivered and answer.status == 302
    assert "redirect not followed" in answer.error and "/hooks/elsewhere" in answer.error
    assert len(server.requests) == 1  # nothing went to the redirect's target


def test_an_error_answer_is_a_failure_with_its_code_and_the_start_of_its_body(receiver):
    server = receiver(fail_first=1)
    answer = post(server.url, body=BODY, headers=headers(), timeout_s=2)
    assert (answer.delivered, answer.status, answer.error) == (False, 503, "HTTP 503: busy, try again")


def test_a_receiver_that_never_answers_is_given_up_on_after_the_timeout(receiver):
    server = receiver(mode="hang")
    started = time.monotonic()
    answer = post(server.url, body=BODY, headers=headers(), timeout_s=1)
    assert 0.9 < time.monotonic() - started < 3
    assert answer.status is None and "within 1 s" in answer.error


def test_the_timeout_bounds_the_whole_answer_not_each_read():
    # A receiver that sends its answer a byte every half second never trips a per-read timeout of 1 s.
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def drip():
        connection, _ = listener.accept()
        connection.recv(65536)
        for byte in b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok":
            if stop.wait(0.5):
                break
            try:
                connection.sendall(bytes([byte]))
            except OSError:
                break
        connection.close()

    threading.Thread(target=drip, daemon=True).start()
    started = time.monotonic()
    answer = post(f"http://127.0.0.1:{listener.getsockname()[1]}/", body=BODY, headers=headers(), timeout_s=1)
    stop.set()
    listener.close()
    assert time.monotonic() - started < 2.5
    assert answer.status is None and "within 1 s" in answer.error


def test_a_refused_connection_is_a_failure_without_a_code():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    answer = post(f"http://127.0.0.1:{port}/", body=BODY, headers=headers(), timeout_s=1)
    assert answer.status is None and answer.error.startswith("connection failed")
