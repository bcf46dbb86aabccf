"""A webhook receiver for the delivery tests, idempotent as a real one should be: it acts on each
Idempotency-Key once, and answers 2xx to a key it already acted on without acting again.

In a test's thread (`Receiver.start()`), or as a process of its own (`python tests/integration/receiver.py
--log requests.jsonl --port-file port ...`) that writes one JSON line per request it answered or gave up on.
Modes: ok; fail the first N requests with 503; hang (never answer: hold each request, then drop it); hold-first
(act on the first request, then hold it without answering, as if the answer were lost); redirect (302).
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

MODES = ("ok", "hang", "hold-first", "redirect")


class Receiver(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(
        self,
        *,
        secret: str = "",
        mode: str = "ok",
        fail_first: int = 0,
        hang_s: float = 60.0,
        log_path: Path | None = None,
        port: int = 0,
    ):
        super().__init__(("127.0.0.1", port), Handler)
        self.secret, self.mode, self.fail_first, self.hang_s, self.log_path = secret, mode, fail_first, hang_s, log_path
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.arrived = 0
        self.requests: list[dict] = []  # each request, with what it was answered (in the order answered)
        self.acted_on: dict[str, int] = {}  # Idempotency-Key -> how many times it was acted on (1, always)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/hooks/edgeportal"

    def start(self) -> Receiver:
        threading.Thread(target=self.serve_forever, name="receiver", daemon=True).start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        self.shutdown()
        self.server_close()

    def effective(self, key: str) -> int:
        with self.lock:
            return self.acted_on.get(key, 0)

    def record(self, entry: dict) -> None:
        with self.lock:
            self.requests.append(entry)
            if self.log_path is not None:
                with self.log_path.open("a") as log:
                    log.write(json.dumps(entry) + "\n")

    def act_on(self, key: str) -> bool:
        """Act on the key (store the output, open the ticket) unless it was already: True if it was new."""
        with self.lock:
            new = key not in self.acted_on
            if new:
                self.acted_on[key] = 1
            return new


class Handler(BaseHTTPRequestHandler):
    server: Receiver

    def log_message(self, format, *args):  # quiet: the test reads the JSON log instead
        pass

    def do_POST(self):
        server = self.server
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        key = self.headers.get("Idempotency-Key", "")
        expected = "sha256=" + hmac.new(server.secret.encode(), body, hashlib.sha256).hexdigest()
        with server.lock:
            server.arrived += 1
            number = server.arrived
        entry = {
            "number": number,
            "key": key,
            "path": self.path,
            "attempt": self.headers.get("X-EdgePortal-Attempt"),
            "signature_ok": hmac.compare_digest(self.headers.get("X-EdgePortal-Signature", ""), expected),
            "content_type": self.headers.get("Content-Type"),
            "user_agent": self.headers.get("User-Agent"),
            "authorization": self.headers.get("Authorization"),
            "body": json.loads(body or b"null"),
        }
        if server.mode == "hang":
            server.record({**entry, "answer": None})
            server.stopping.wait(server.hang_s)
            self.close_connection = True
            return
        if server.mode == "hold-first" and number == 1:
            server.act_on(key)
            server.record({**entry, "answer": None, "effect": "acted"})
            server.stopping.wait(server.hang_s)  # the answer never reaches a sender killed meanwhile
            self.close_connection = True
            return
        if server.mode == "redirect":
            server.record({**entry, "answer": 302})
            self.answer(302, b"", location="/hooks/elsewhere")
            return
        if number <= server.fail_first:
            server.record({**entry, "answer": 503})
            self.answer(503, b"busy, try again")
            return
        effect = "acted" if server.act_on(key) else "duplicate"
        server.record({**entry, "answer": 200, "effect": effect})
        self.answer(200, json.dumps({"ok": True, "duplicate": effect == "duplicate"}).encode())

    def answer(self, status: int, body: bytes, location: str = "") -> None:
        self.send_response(status)
        if location:
            self.send_header("Location", location)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def read_log(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--secret", default="")
    parser.add_argument("--mode", choices=MODES, default="ok")
    parser.add_argument("--fail-first", type=int, default=0)
    parser.add_argument("--hang-s", type=float, default=60.0)
    parser.add_argument("--log", type=Path, required=True)
    parser.add_argument("--port-file", type=Path, required=True)
    args = parser.parse_args()
    server = Receiver(secret=args.secret, mode=args.mode, fail_first=args.fail_first, hang_s=args.hang_s,
                      log_path=args.log)  # fmt: skip
    args.port_file.write_text(str(server.server_address[1]))
    server.serve_forever()


if __name__ == "__main__":
    main()
