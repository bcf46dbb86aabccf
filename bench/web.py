"""Web benchmark: how fast the web server answers bursts of submissions while the worker runs a batch, for
Django's development server (`make dev`) and the production server (`make run`) side by side.

Run with `make bench-web` (or `.venv/bin/python bench/web.py --rounds 2 --refused 40` for a quick try). It
writes its section of BENCHMARKS.md. Each server gets its own pipeline (one worker with the default model)
in this one invocation, and the same two measurements, each started only while a batch runs (a background
stream of jobs keeps the worker busy):

- accepted: 24 submissions at once (POST /api/jobs, each answered 202), repeated --rounds times;
- refused: a 16-way burst of 120 submissions answered 429 (queue_full: the queue limit is lowered to 1 while
  jobs wait, and batches hold one job so the queue stays full).
"""

from __future__ import annotations

import argparse
import math
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import harness
from harness import Pipeline, percentile

WINDOW_MS = 60
GOAL_P95_MS = 100
DEADLINE_MS = 300_000  # submissions must be accepted whatever the queue: admission never refuses them
# Cache off: every submission goes through admission to the queue, as new prompts do.
harness.configure(EDGE_CACHE_ENABLED="false", EDGE_DEFAULT_MAX_NEW_TOKENS="32")

SERVERS = {
    "runserver": "`manage.py runserver` (`make dev`)",
    "production": "gunicorn + uvicorn workers (`make run`: WSGI handler on 2 threads a pool)",
    "production-16": "the same, 16 threads a pool (`WEB_THREADS=16`, the default before)",
    "production-uncached": (
        "the same, sources and blocked patterns read from the database on every request (`EDGE_LOOKUP_TTL_S=0`)"
    ),
    "production-asgi-only": (
        "the same, every path through Django's ASGI handler (`edgeportal.asgi:asgi_only`, a new database "
        "connection per request)"
    ),
    "production-new-connections": "the same, a new database connection per request (`DB_CONN_MAX_AGE=0`)",
    "production-sqlite-busy-wait": (
        "the same, SQLite's writers waiting in its own busy loop, not on the writer lock "
        "(`EDGE_SQLITE_WRITER_LOCK=off`)"
    ),
    "production-reuse-port": (
        "the same, each worker accepting from a socket of its own (`WEB_REUSE_PORT=true`, SO_REUSEPORT)"
    ),
}
# Environment each server variant runs with (the harness's Pipeline starts its server with os.environ).
# Django's ASGI handler runs each request on a thread of its own, where a kept connection would outlive it.
SERVER_ENV = {
    "production-16": {"WEB_THREADS": "16"},
    "production-uncached": {"EDGE_LOOKUP_TTL_S": "0"},
    "production-asgi-only": {"DB_CONN_MAX_AGE": "0"},
    "production-new-connections": {"DB_CONN_MAX_AGE": "0"},
    "production-sqlite-busy-wait": {"EDGE_SQLITE_WRITER_LOCK": "off"},
    "production-reuse-port": {"WEB_REUSE_PORT": "true"},
}
PIPELINE_SERVER = {
    name: "production"
    for name in (
        "production-16",
        "production-uncached",
        "production-new-connections",
        "production-sqlite-busy-wait",
        "production-reuse-port",
    )
}


class Prompts:
    """Short workload prompts, each made unique (no single flight, no cache)."""

    def __init__(self) -> None:
        self.lines = [p for p in harness.workload() if len(p) < 400]
        self.count = 0
        self.lock = threading.Lock()

    def next(self) -> str:
        with self.lock:
            self.count += 1
            return f"{self.lines[self.count % len(self.lines)]} (#{self.count})"


class KeepBusy:
    """A background stream of jobs: whenever fewer than `waiting` jobs wait, one more is submitted."""

    def __init__(self, pipeline: Pipeline, prompts: Prompts, waiting: int = 4):
        self.pipeline, self.prompts, self.waiting = pipeline, prompts, waiting
        self.stopping = threading.Event()
        self.paused = threading.Event()  # set during the refused burst: the stream's own 429s would add load
        self.thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> KeepBusy:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stopping.set()
        self.thread.join()

    def _run(self) -> None:
        from edgeportal.core.queueing import get_queue

        queue = get_queue()
        while not self.stopping.is_set():
            if not self.paused.is_set() and queue.lane_depths()["short"] < self.waiting:
                post(self.pipeline, {"prompt": self.prompts.next(), "deadline_ms": DEADLINE_MS})
            else:
                time.sleep(0.2)


def wait_for_batch(timeout: float = 120) -> None:
    """Until a worker runs a batch (it publishes when the batch should end) and jobs wait behind it."""
    from edgeportal.core.queueing import get_queue

    queue = get_queue()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if queue.redis.hlen(queue.busy_key) and queue.lane_depths()["short"]:
            return
        time.sleep(0.05)
    raise TimeoutError("no batch ran")


def post(pipeline: Pipeline, body: dict) -> dict:
    """pipeline.post, with a connection the server reset or refused counted as an answer of status 0."""
    sent = time.perf_counter()
    try:
        return pipeline.post(body)
    except OSError:
        return {"status": 0, "body": {}, "round_trip_ms": (time.perf_counter() - sent) * 1000, "server_ms": math.nan}


def post_all(pipeline: Pipeline, bodies: list[dict], concurrency: int) -> list[dict]:
    """POST every body from `concurrency` threads; with one body per thread, all are released at once."""
    start = threading.Barrier(concurrency) if len(bodies) == concurrency else None

    def post_one(body: dict) -> dict:
        if start:
            start.wait()
        return post(pipeline, body)

    with ThreadPoolExecutor(concurrency) as pool:
        return list(pool.map(post_one, bodies))


def accepted(pipeline: Pipeline, prompts: Prompts, rounds: int, concurrency: int) -> list[dict]:
    """Rounds of `concurrency` submissions released at once, each while a batch runs."""
    answers = []
    for _ in range(rounds):
        wait_for_batch()
        bodies = [{"prompt": prompts.next(), "deadline_ms": DEADLINE_MS} for _ in range(concurrency)]
        answers += post_all(pipeline, bodies, concurrency)
    return answers


def refused(pipeline: Pipeline, busy: KeepBusy, prompts: Prompts, total: int, concurrency: int) -> list[dict]:
    """A burst refused with 429 queue_full: batches of one job keep jobs waiting, the limit is set below them."""
    from edgeportal.core.queueing import get_queue
    from inference.settings import SchedulerSettings

    queue = get_queue()
    pipeline.update_settings(max_batch_size=1)
    busy.waiting = 8
    while queue.lane_depths()["short"] < 8:
        time.sleep(0.1)
    wait_for_batch()
    busy.paused.set()
    pipeline.update_settings(queue_limit=1)
    answers = post_all(pipeline, [{"prompt": prompts.next()} for _ in range(total)], concurrency)
    defaults = SchedulerSettings()
    pipeline.update_settings(queue_limit=defaults.queue_limit, max_batch_size=defaults.max_batch_size)
    busy.waiting = 4
    busy.paused.clear()
    return answers


def summary(answers: list[dict], status: int) -> dict:
    matching = [a for a in answers if a["status"] == status]
    trips = [a["round_trip_ms"] for a in matching]
    server = [a["server_ms"] for a in matching]
    return {
        "n": len(answers),
        "matching": len(matching),
        "others": sorted({a["status"] for a in answers} - {status}),
        **{f"p{q}": percentile(trips, q / 100) for q in (50, 95, 99)},
        "server_p95": percentile(server, 0.95),
    }


def report(command: str, results: dict, args) -> str:
    lines = [
        "## Web server under bursts, while a batch runs"
        + ("" if harness.database_name() == "SQLite" else f" ({harness.database_name()})"),
        "",
        f"Command: `{command}`. Machine: {harness.machine()}. Database: {harness.database_name()}.  ",
        f"One worker with the default model, `window_ms={WINDOW_MS}`, cache off; a background stream keeps jobs "
        "waiting, and each measurement starts while a batch runs. Round trip as the client (Python threads on "
        "the same node) saw it; *server p95* is the server's own time (`Server-Timing`). "
        f"Goal (issue 12): p95 ≤ {GOAL_P95_MS} ms for both.",
        "",
        "| server | measurement | answers | p50 | p95 | p99 | server p95 | goal met |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for server, label in SERVERS.items():
        if server not in results:
            continue
        for name, what in (
            ("accepted", f"{args.concurrency} at once, 202 ({args.rounds} rounds)"),
            ("refused", f"{args.refused} in a {args.burst}-way burst, 429"),
        ):
            r = results[server][name]
            others = ", ".join("connection reset" if status == 0 else str(status) for status in r["others"])
            answers = f"{r['matching']}/{r['n']}" + (f" (others: {others})" if others else "")
            met = "yes" if r["matching"] == r["n"] and r["p95"] <= GOAL_P95_MS else "no"
            lines.append(
                f"| {label} | {what} | {answers} | {r['p50']:.0f} ms | {r['p95']:.0f} ms | {r['p99']:.0f} ms | "
                f"{r['server_p95']:.0f} ms | {met} |"
            )
    lines.append("")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5, help="rounds of concurrent accepted submissions (default 5)")
    parser.add_argument("--concurrency", type=int, default=24, help="accepted submissions at once (default 24)")
    parser.add_argument("--refused", type=int, default=120, help="submissions in the refused burst (default 120)")
    parser.add_argument("--burst", type=int, default=16, help="concurrent senders of the burst (default 16)")
    parser.add_argument("--servers", default=",".join(SERVERS), help=f"some of: {', '.join(SERVERS)}")
    parser.add_argument("--port", type=int, default=8768)
    parser.add_argument("--output", type=Path, default=harness.BENCHMARKS)
    parser.add_argument("--no-write", action="store_true", help="print the section instead of writing it")
    args = parser.parse_args()
    servers = args.servers.split(",")
    if unknown := set(servers) - set(SERVERS):
        parser.error(f"unknown server(s): {', '.join(sorted(unknown))}")
    defaults = (args.rounds, args.concurrency, args.refused, args.burst, servers) == (5, 24, 120, 16, list(SERVERS))
    command = "make bench-web" if defaults else (
        f"python bench/web.py --rounds {args.rounds} --concurrency {args.concurrency} --refused {args.refused} "
        f"--burst {args.burst} --servers {args.servers}"
    )  # fmt: skip
    if harness.database_name() == "PostgreSQL":
        command = f"BENCH_DATABASE_URL={os.environ['BENCH_DATABASE_URL']} {command}".replace("make ", "make ", 1)

    results = {}
    for server in servers:
        print(f"{server} ...", flush=True)
        prompts = Prompts()
        saved = dict(os.environ)
        os.environ.update(SERVER_ENV.get(server, {}))
        with Pipeline(args.port, window_ms=WINDOW_MS, server=PIPELINE_SERVER.get(server, server)) as pipeline:
            # Warm every web process: its first request loads the tokenizer.
            post_all(pipeline, [{"prompt": prompts.next(), "deadline_ms": DEADLINE_MS} for _ in range(8)], 8)
            with KeepBusy(pipeline, prompts) as busy:
                results[server] = {
                    "accepted": summary(accepted(pipeline, prompts, args.rounds, args.concurrency), 202),
                    "refused": summary(refused(pipeline, busy, prompts, args.refused, args.burst), 429),
                }
        os.environ.clear()
        os.environ.update(saved)
        for name, r in results[server].items():
            print(f"  {name}: {r['matching']}/{r['n']}, p50 {r['p50']:.0f} ms, p95 {r['p95']:.0f} ms", flush=True)
    text = report(command, results, args)
    if not args.no_write:
        harness.write_section("web" if harness.database_name() == "SQLite" else "web-postgresql", text, args.output)
    print(text)


if __name__ == "__main__":
    main()
