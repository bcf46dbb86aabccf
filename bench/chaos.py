"""Fault injection, run for real: a node under steady load while its processes and services fail on a schedule.

Run with `make chaos` (about 12 minutes). It writes the RELIABILITY section of BENCHMARKS.md.

The node is the real thing, started as in production: the web server (`make run`'s gunicorn with uvicorn
workers, edgeportal/serving.py), two Celery workers (`celery -A edgeportal worker -P solo`) serving both lanes,
and `celery -A edgeportal beat` in a process of its own, on a private PostgreSQL cluster and a private Redis
(with an append-only file), both on free ports in temporary folders: the machine's own Redis and PostgreSQL
serve other people's tests and are never touched. The tiny random-weight test model (tests/tiny_model.py, a
real transformers model with SmolLM2's tokenizer) stands in for the default model, so a batch takes a fraction
of a second and the run can send 10 000 jobs in about ten minutes.

Sixteen senders (four machine sources) submit workload prompts made unique (no cache hits) at up to 20 per
second, each waiting for its answer; one more reads a job page, a job's JSON and /readyz twice a second. The
faults, one at a time (SCHEDULE): kill -9 of a worker mid-batch while the other worker runs; kill -9 of a web
worker and of the whole web server mid-submit; a Redis restart with persistence, and a flush (FLUSHALL: a
restart without persistence); a PostgreSQL restart; a table lock held on the jobs for a minute; kill -9 of the
other worker mid-batch, restarted 5 s later as systemd would.

It passes when every job the API accepted (202) ended in exactly one final state (done, failed or expired)
with one latency record, every done job with its output and its batch, and nothing is stuck once the run
drains: no job queued or running in the database, nothing in Redis' lanes, leases or job hashes; and no
server error (5xx other than a 503) was answered. It also counts jobs the model ran twice (allowed by
at-least-once delivery), failed and expired jobs with their reasons, and per fault how long until the
service answered and jobs completed again.
"""

from __future__ import annotations

import argparse
import http.client
import http.cookiejar
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import harness
from private_services import PrivatePostgres, PrivateRedis, free_port

from edgeportal.serving import web_command, worker_command
from edgeportal.supervisor import die_with_parent
from inference.pools import Pool
from tests.tiny_model import CACHE as TINY_MODEL

ROOT = harness.ROOT
PREFIX = "chaos"
POOL = Pool(TINY_MODEL.name, "cpu").prefix(PREFIX)  # the queue keys of the tiny model's pool, on the CPU
WORKERS = ("w1@chaos", "w2@chaos")
SENDERS = 16
SOURCES = ("line-a-camera", "press-plc", "agv-fleet", "mes")
REQUEST_TIMEOUT_S = 90  # a sender gives up on an answer after this (the table lock holds inserts for a minute)
RESTART_AFTER_S = 5  # what docs/deploy's systemd units wait before restarting a process that died
SUPERVISOR_RESTART_S = 1  # what `make run`'s supervisor waits the first time
DOWN_S = 3  # how long Redis and PostgreSQL stay down in their restarts
# Seconds after the load starts, and the fault. A fault starts at its time, or 20 s after the one before ends.
SCHEDULE = [
    (30, "worker_takeover"),
    (80, "web_worker_kill"),
    (105, "web_kill"),
    (150, "redis_restart"),
    (210, "redis_flush"),
    (270, "postgres_restart"),
    (330, "db_lock"),
    (460, "worker_restart"),
]
TITLES = {
    "worker_takeover": "kill -9 of worker w1 mid-batch; w2 serves the same lanes (w1 back once its jobs finished)",
    "web_worker_kill": "kill -9 of one web worker (uvicorn) mid-submit; gunicorn replaces it",
    "web_kill": f"kill -9 of the whole web server mid-submit; started again after {SUPERVISOR_RESTART_S} s",
    "redis_restart": f"Redis restart with persistence (a clean stop, append-only file), down {DOWN_S} s",
    "redis_flush": "Redis loses everything (FLUSHALL: a restart without persistence)",
    "postgres_restart": f"PostgreSQL restart (fast shutdown: every connection dropped), down {DOWN_S} s",
    "db_lock": "a transaction holds LOCK TABLE jobs_job IN EXCLUSIVE MODE (writes wait) for {lock_s} s",
    "worker_restart": f"kill -9 of worker w2 mid-batch, started again after {RESTART_AFTER_S} s (systemd)",
}
RAN = re.compile(r"(\S+) ran a (\w+) batch of \d+ job\(s\) \[([\d ]+)\]")
# What the sweep and the workers' recovery logged, with Celery's local timestamp.
RECOVERED = re.compile(
    r"\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),\d+: \w+/\w+\] (?:\S+ )?"
    r"(re-queued|put back) (\d+) job\(s\)"
)


def now() -> float:
    return time.time()


# --- the node's processes ---------------------------------------------------------------------


class Process:
    """One process of the node, in a process group of its own (kill -9 takes its children too)."""

    def __init__(self, name: str, command: list[str], env: dict[str, str], log_path: Path):
        self.name, self.command, self.env, self.log_path = name, command, env, log_path
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            self.command, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            preexec_fn=die_with_parent,  # a run killed outright leaves no node behind
        )  # fmt: skip
        log.close()

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        """kill -9, its whole process group at once."""
        if self.process is None:
            return
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait(30)

    def stop(self) -> None:
        if not self.alive():
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(60)
        except subprocess.TimeoutExpired:
            pass
        self.kill()

    def children(self) -> list[int]:
        path = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        try:
            return [int(pid) for pid in path.read_text().split()]
        except OSError:
            return []


class Node:
    """The web server, two workers and beat, on the private PostgreSQL and Redis."""

    def __init__(self, folder: Path, env: dict[str, str], redis_client, port: int):
        self.folder, self.env, self.redis, self.port = folder, env, redis_client, port
        self.url = f"http://127.0.0.1:{port}"
        self.web = Process("web", web_command(host="127.0.0.1", port=port), env, folder / "web.log")
        self.workers = {
            name: Process(name, worker_command(name=name), env, folder / f"worker-{name.split('@')[0]}.log")
            for name in WORKERS
        }
        beat = [sys.executable, "-m", "celery", "-A", "edgeportal", "beat", "-s", str(folder / "celerybeat-schedule"),
                "--loglevel=INFO"]  # fmt: skip
        self.beat = Process("beat", beat, env, folder / "beat.log")

    def processes(self) -> list[Process]:
        return [self.web, *self.workers.values(), self.beat]

    def start(self) -> None:
        for worker in self.workers.values():
            worker.start()
        self.beat.start()
        self.web.start()
        for name in self.workers:
            self.wait_worker(name, since=0)
        self.wait_web()

    def wait_worker(self, name: str, *, since: float, timeout: float = 180) -> None:
        """Until the worker's heartbeat (written once its model is loaded and warmed up) is newer than since."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.workers[name].alive():
                raise RuntimeError(f"worker {name} exited; see {self.workers[name].log_path}")
            try:
                beat = self.redis.hget(f"{POOL}:workers:{name}", "heartbeat_at")
            except Exception:
                beat = None
            if beat and float(beat) > since:
                return
            time.sleep(0.2)
        raise TimeoutError(f"worker {name} did not start")

    def web_answers(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/healthz", timeout=2) as response:
                return response.status == 200
        except OSError:
            return False

    def wait_web(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.web.alive():
                raise RuntimeError(f"the web server exited; see {self.web.log_path}")
            if self.web_answers() and len(self.web.children()) >= 2:
                return
            time.sleep(0.1)
        raise TimeoutError("the web server did not answer")

    def stop(self) -> None:
        for process in [self.web, self.beat, *self.workers.values()]:
            process.stop()


# --- the load ---------------------------------------------------------------------------------


@dataclass
class Answer:
    n: int
    source: str
    sent: float
    took: float
    status: int  # 0: no answer (refused connection, reset, timeout)
    code: str  # the API error code, or what went wrong on the way
    job_id: int | None = None


def _error_code(status: int, raw: bytes) -> str:
    try:
        return json.loads(raw)["error"]["code"]
    except (ValueError, KeyError, TypeError):
        return f"http_{status}" + ("" if raw.lstrip().startswith(b"{") else "_not_json")


class Load:
    """Senders that each wait for their answer, paced together to at most `rate` submissions a second."""

    def __init__(self, url: str, tokens: dict[str, str], *, total: int, rate: float, prompts: list[str]):
        self.url, self.tokens, self.total, self.rate, self.prompts = url, tokens, total, rate, prompts
        self.answers: list[Answer] = []
        self.in_flight = 0
        self._lock = threading.Lock()
        self._issued = 0
        self._next_at = 0.0
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        self._next_at = now()
        for index in range(SENDERS):
            thread = threading.Thread(target=self._send_forever, args=(index,), daemon=True, name=f"sender-{index}")
            thread.start()
            self._threads.append(thread)

    def done(self) -> bool:
        return all(not thread.is_alive() for thread in self._threads)

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(REQUEST_TIMEOUT_S + 5)

    def _ticket(self) -> int | None:
        """The next submission's number, once its time comes; a backlog after a stall is not sent in a burst."""
        with self._lock:
            if self._issued >= self.total:
                return None
            n = self._issued
            self._issued += 1
            at = self._next_at = max(self._next_at + 1 / self.rate, now() - 1)
        delay = at - now()
        if delay > 0:
            self._stop.wait(delay)
        return None if self._stop.is_set() else n

    def body(self, n: int) -> dict:
        rng = random.Random(n)
        body = {"prompt": f"{self.prompts[n % len(self.prompts)]} (ticket {n})"}
        draw = rng.random()
        if draw < 0.2:
            body["deadline_ms"] = 30_000
        elif draw < 0.3:
            body["deadline_ms"] = 60_000
        body["priority"] = rng.choices(["high", "normal", "low"], weights=[10, 75, 15])[0]
        return body

    def _send_forever(self, index: int) -> None:
        while (n := self._ticket()) is not None:
            source = SOURCES[n % len(SOURCES)]
            request = urllib.request.Request(
                f"{self.url}/api/jobs", data=json.dumps(self.body(n)).encode(), method="POST",
                headers={"Authorization": f"Bearer {self.tokens[source]}", "Content-Type": "application/json"},
            )  # fmt: skip
            with self._lock:
                self.in_flight += 1
            sent = now()
            job_id = None
            try:
                with urllib.request.urlopen(request, timeout=REQUEST_TIMEOUT_S) as response:
                    status, raw = response.status, response.read()
                job_id, code = json.loads(raw)["id"], ""
            except urllib.error.HTTPError as error:
                status = error.code
                code = _error_code(status, error.read())
            except (OSError, ValueError, http.client.HTTPException) as error:  # refused, reset, timed out, cut short
                status, code = 0, type(error).__name__
            with self._lock:
                self.in_flight -= 1
                self.answers.append(Answer(n, source, sent, now() - sent, status, code, job_id))


class Reader:
    """What people and probes read meanwhile: the job list page (logged in), a job's JSON, /readyz."""

    def __init__(self, url: str, token: str, load: Load, password: str):
        self.url, self.token, self.load, self.password = url, token, load, password
        self.seen: list[tuple[float, str, int]] = []  # (time, what, status)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read_forever, daemon=True, name="reader")
        self._opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(30)

    def _get(self, path: str, headers: dict | None = None) -> tuple[int, str]:
        request = urllib.request.Request(f"{self.url}{path}", headers=headers or {})
        try:
            with self._opener.open(request, timeout=30) as response:
                return response.status, response.url
        except urllib.error.HTTPError as error:
            return error.code, path
        except (OSError, ValueError, http.client.HTTPException):
            return 0, path

    def _log_in(self) -> None:
        try:
            with self._opener.open(f"{self.url}/login/", timeout=30) as response:
                page = response.read().decode()
            token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
            form = urllib.parse.urlencode({"username": "chaos-manager", "password": self.password,
                                           "csrfmiddlewaretoken": token}).encode()  # fmt: skip
            self._opener.open(urllib.request.Request(f"{self.url}/login/", data=form), timeout=30).close()
        except (OSError, ValueError, AttributeError):
            pass  # the server is down: the next round tries again

    def _read_forever(self) -> None:
        self._log_in()
        while not self._stop.wait(0.5):
            status, landed = self._get("/jobs/")
            if status == 200 and "/login/" in landed:
                self._log_in()
            self.seen.append((now(), "job list page", status))
            accepted = [a.job_id for a in self.load.answers[-50:] if a.job_id and a.source == SOURCES[0]]
            if accepted:
                status, _ = self._get(f"/api/jobs/{accepted[0]}", {"Authorization": f"Bearer {self.token}"})
                self.seen.append((now(), "job JSON", status))
            self.seen.append((now(), "/readyz", self._get("/readyz")[0]))


# --- faults -----------------------------------------------------------------------------------


@dataclass
class Fault:
    name: str
    title: str
    started: float = 0.0
    back: float = 0.0  # the service (or the worker's jobs) back
    notes: dict = field(default_factory=dict)


class Chaos:
    def __init__(self, node: Node, redis_server: PrivateRedis, postgres: PrivatePostgres, load: Load, lock_s: int):
        self.node, self.redis_server, self.postgres, self.load, self.lock_s = node, redis_server, postgres, load, lock_s

    def run(self, name: str) -> Fault:
        fault = Fault(name, TITLES[name].format(lock_s=self.lock_s))
        print(f"{time.strftime('%H:%M:%S')} fault: {fault.title}", flush=True)
        getattr(self, name)(fault)
        print(f"{time.strftime('%H:%M:%S')}   back after {fault.back - fault.started:.1f} s {fault.notes}", flush=True)
        return fault

    def _kill_worker_mid_batch(self, fault: Fault, name: str) -> None:
        """kill -9 once the worker is in a batch (its busy entry is set from inference to storage); the
        jobs it held are those still leased to it afterwards."""
        deadline = time.monotonic() + 60
        while not self.node.redis.hexists(f"{POOL}:busy", name) and time.monotonic() < deadline:
            time.sleep(0.002)
        fault.started = now()
        self.node.workers[name].kill()
        leased = [int(job_id) for job_id in self.node.redis.zrange(f"{POOL}:leased", 0, -1)]
        pipe = self.node.redis.pipeline()
        for job_id in leased:
            pipe.hget(f"{POOL}:job:{job_id}", "worker")
        holders = pipe.execute()
        fault.notes["worker"] = name
        held = [job_id for job_id, holder in zip(leased, holders, strict=True) if holder == name.encode()]
        fault.notes["held"] = held

    def worker_takeover(self, fault: Fault) -> None:
        name = WORKERS[0]
        self._kill_worker_mid_batch(fault, name)
        from edgeportal.jobs.models import Job

        deadline = time.monotonic() + 90
        held = fault.notes["held"]
        while time.monotonic() < deadline:
            if Job.objects.filter(pk__in=held, status__in=Job.FINISHED).count() == len(held):
                break
            time.sleep(0.2)
        fault.back = now()
        self.node.workers[name].start()
        self.node.wait_worker(name, since=fault.back)

    def worker_restart(self, fault: Fault) -> None:
        name = WORKERS[1]
        self._kill_worker_mid_batch(fault, name)
        time.sleep(RESTART_AFTER_S)
        self.node.workers[name].start()
        self.node.wait_worker(name, since=fault.started)
        fault.back = now()

    def _wait_in_flight(self) -> None:
        deadline = time.monotonic() + 10
        while self.load.in_flight == 0 and time.monotonic() < deadline:
            time.sleep(0.001)

    def web_worker_kill(self, fault: Fault) -> None:
        self._wait_in_flight()
        victim = self.node.web.children()[0]
        fault.started = now()
        fault.notes["in_flight"] = self.load.in_flight
        os.kill(victim, signal.SIGKILL)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if victim not in self.node.web.children() and len(self.node.web.children()) >= 2:
                break
            time.sleep(0.05)
        self.node.wait_web()
        fault.back = now()

    def web_kill(self, fault: Fault) -> None:
        self._wait_in_flight()
        fault.started = now()
        fault.notes["in_flight"] = self.load.in_flight
        self.node.web.kill()
        time.sleep(SUPERVISOR_RESTART_S)
        self.node.web.start()
        self.node.wait_web()
        fault.back = now()

    def redis_restart(self, fault: Fault) -> None:
        fault.started = now()
        self.redis_server.shutdown()
        time.sleep(DOWN_S)
        self.redis_server.start()
        fault.back = now()

    def redis_flush(self, fault: Fault) -> None:
        fault.started = now()
        self.redis_server.client().flushall()
        fault.back = now()

    def postgres_restart(self, fault: Fault) -> None:
        fault.started = now()
        self.postgres.stop("fast")
        time.sleep(DOWN_S)
        self.postgres.start()
        fault.back = now()

    def db_lock(self, fault: Fault) -> None:
        import psycopg

        with psycopg.connect(self.postgres.url.replace("postgres://", "postgresql://")) as connection:
            connection.execute("LOCK TABLE jobs_job IN EXCLUSIVE MODE")  # psycopg opened the transaction
            fault.started = now()
            time.sleep(self.lock_s)
            connection.commit()
        fault.back = now()


# --- the verdict ------------------------------------------------------------------------------


def batch_runs(logs: list[Path]) -> Counter:
    """How often the model ran each job to the end: the workers' "ran a ... batch" lines."""
    runs: Counter = Counter()
    for path in logs:
        for match in RAN.finditer(path.read_text(errors="replace") if path.exists() else ""):
            runs.update(int(job_id) for job_id in match.group(3).split())
    return runs


def recoveries(logs: list[Path]) -> list[tuple[float, str, int]]:
    """(time, "re-queued" by the sweep or "put back" from a dead worker's lease, how many) from the workers' logs."""
    found = []
    for path in logs:
        for match in RECOVERED.finditer(path.read_text(errors="replace") if path.exists() else ""):
            at = time.mktime(time.strptime(match.group(1), "%Y-%m-%d %H:%M:%S"))
            found.append((at, match.group(2), int(match.group(3))))
    return found


def reason_kind(error: str) -> str:
    """A reason without its numbers, so reasons group."""
    return re.sub(r"\d+", "N", error)[:140]


def redis_leftovers(client) -> dict[str, int]:
    keys = {
        "lane:short": client.zcard(f"{POOL}:lane:short"),
        "lane:long": client.zcard(f"{POOL}:lane:long"),
        "leased": client.zcard(f"{POOL}:leased"),
        "deadlines": client.zcard(f"{POOL}:deadlines"),
        "job hashes": sum(1 for _ in client.scan_iter(f"{POOL}:job:*")),
    }
    return {name: int(count) for name, count in keys.items()}


def unfinished_count() -> int:
    from django.db import close_old_connections

    from edgeportal.jobs.models import Job

    close_old_connections()
    return Job.objects.exclude(status__in=Job.FINISHED).count()


def drain(redis_client, timeout: float) -> float:
    """Wait until no job is queued or running and Redis holds no job; returns how long it took."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        try:
            if unfinished_count() == 0 and not any(redis_leftovers(redis_client).values()):
                break
        except Exception:  # a service still coming back: look again
            pass
        time.sleep(1)
    return time.monotonic() - started


def verdict(answers: list[Answer], seen: list, logs: list[Path], redis_client) -> dict:
    from django.db import close_old_connections

    from edgeportal.jobs.models import Job
    from edgeportal.latency.models import BatchRecord, JobLatency

    close_old_connections()
    fields = ("id", "status", "error", "output_tokens", "batch_id", "worker", "created_at", "finished_at",
              "deadline_at")  # fmt: skip
    jobs = {row["id"]: row for row in Job.objects.values(*fields)}
    latencies = Counter(JobLatency.objects.values_list("job_id", flat=True))
    latency_status = dict(JobLatency.objects.values_list("job_id", "status"))
    batch_ids = list(BatchRecord.objects.values_list("batch_id", flat=True))
    runs = batch_runs(logs)
    accepted = {a.job_id for a in answers if a.status == 202}
    final = set(Job.FINISHED)

    checks = {
        "accepted jobs missing from the database": sorted(accepted - set(jobs)),
        "jobs not in a final state (queued or running)": sorted(i for i, j in jobs.items() if j["status"] not in final),
        "jobs without exactly one latency record": sorted(i for i in jobs if latencies[i] != 1),
        "latency record's status differs from the job's": sorted(
            i for i, j in jobs.items() if i in latency_status and latency_status[i] != j["status"]
        ),
        "done jobs without output tokens or a batch": sorted(
            i for i, j in jobs.items() if j["status"] == "done" and not (j["output_tokens"] and j["batch_id"])
        ),
        "batches stored twice": [b for b, n in Counter(batch_ids).items() if n > 1],
        "server errors (5xx other than 503) answered": [a.n for a in answers if a.status >= 500 and a.status != 503]
        + [round(t) for t, _, status in seen if status >= 500 and status != 503],
    }
    leftovers = redis_leftovers(redis_client)
    checks["left in Redis (lanes, leases, deadlines, job hashes)"] = [f"{k}: {v}" for k, v in leftovers.items() if v]
    statuses = Counter(j["status"] for j in jobs.values())
    return {
        "checks": checks,
        "passed": not any(checks.values()),
        "jobs": jobs,
        "statuses": statuses,
        "accepted": accepted,
        "runs": runs,
        "twice": {job_id: n for job_id, n in runs.items() if n > 1},
        "recoveries": recoveries(logs),
        "failed": Counter(reason_kind(j["error"]) for j in jobs.values() if j["status"] == "failed"),
        "expired": Counter(reason_kind(j["error"]) for j in jobs.values() if j["status"] == "expired"),
        "not_answered_202": sorted(set(jobs) - accepted),
    }


def _epoch(value) -> float | None:
    return value.timestamp() if value else None


def fault_rows(answers: list[Answer], faults: list[Fault], result: dict, seen: list, end: float) -> list[dict]:
    """Per fault: when the service was back, how long clients got no 202, the longest stretch without a job
    finishing done, when the first job sent after the fault finished done, and the jobs sent in its window."""
    jobs = result["jobs"]
    done_at = sorted(_epoch(j["finished_at"]) for j in jobs.values() if j["status"] == "done")
    rows = []
    starts = [f.started for f in faults] + [end]
    for index, fault in enumerate(faults):
        start, until = fault.started, starts[index + 1]
        window = [a for a in answers if start <= a.sent < until]
        refused = [a for a in window if a.status not in (202, 429)]
        first_ok = min((a.sent + a.took for a in window if a.status == 202 and a.sent >= start), default=None)
        outage = 0.0
        if refused:
            first_bad = min(a.sent for a in refused)
            back_ok = [a.sent + a.took for a in window if a.status == 202 and a.sent > max(x.sent for x in refused)]
            outage = (min(back_ok) if back_ok else until) - first_bad
        near = [t for t in done_at if start - 1 <= t <= min(until, start + 180)]
        gaps = [b - a for a, b in zip([start, *near], near, strict=False)]
        sent_after = [
            _epoch(jobs[a.job_id]["finished_at"])
            for a in window
            if a.job_id in jobs and jobs[a.job_id]["status"] == "done"
        ]
        ids = [a.job_id for a in window if a.status == 202]
        outcome = Counter(jobs[i]["status"] for i in ids if i in jobs)
        row = {
            "fault": fault,
            "back_s": fault.back - start,
            "clients_refused_s": outage,
            "first_202_s": (first_ok - start) if first_ok else None,
            "gap_s": max(gaps, default=0.0),
            "first_done_s": (min(sent_after) - start) if sent_after else None,
            "sent": len(window),
            "accepted": len(ids),
            "done": outcome["done"],
            "failed": outcome["failed"],
            "expired": outcome["expired"],
            "refused_429": sum(a.status == 429 for a in window),
            "unavailable_503": sum(a.status == 503 for a in window),
            "other_5xx": sum(a.status >= 500 and a.status != 503 for a in window),
            "no_answer": sum(a.status == 0 for a in window),
            "slowest_s": max((a.took for a in window), default=None),
            "twice": sum(1 for i in ids if result["runs"].get(i, 0) > 1),
            "pages_503": sum(1 for t, what, s in seen if start <= t < until and s == 503 and what != "/readyz"),
            "requeued": sum(n for t, kind, n in result["recoveries"] if start <= t < until and kind == "re-queued"),
            "put_back": sum(n for t, kind, n in result["recoveries"] if start <= t < until and kind == "put back"),
        }
        held = fault.notes.get("held")
        if held is not None:
            done = [jobs[i] for i in held if i in jobs and jobs[i]["status"] == "done"]
            row["held"] = {
                "jobs": len(held),
                "done": len(done),
                "done_elsewhere": sum(j["worker"] != fault.notes["worker"] for j in done),
                "in_time": sum(j["finished_at"] <= j["deadline_at"] for j in done),
                "last_done_s": max((_epoch(j["finished_at"]) - start for j in done), default=None),
            }
        rows.append(row)
    return rows


# --- the report -------------------------------------------------------------------------------


def _s(value: float | None) -> str:
    return "—" if value is None else f"{value:.1f}"


def report(args, result: dict, rows: list[dict], answers: list[Answer], seen: list, timing: dict) -> str:
    checks, statuses = result["checks"], result["statuses"]
    verdict_line = (
        "**PASS**: every accepted job ended in exactly one final state with its output stored once; "
        "0 lost, 0 stored twice, 0 stuck, no server error."
        if result["passed"]
        else "**FAIL**: " + "; ".join(f"{name}: {len(found)}" for name, found in checks.items() if found) + "."
    )
    codes = Counter(a.status for a in answers)
    answered = ", ".join(f"{n} answered {status or 'nothing'}" for status, n in sorted(codes.items()))
    lines = [
        "## Reliability: faults injected into a running node",
        "",
        f"Command: `make chaos` ({args.jobs} submissions at up to {args.rate:g}/s; a {args.lock_s} s table lock)  ",
        f"Machine: {harness.machine()}; load average {timing['load_before']:.1f} before the run (the run itself "
        f"keeps both cores busy), {timing['load_after']:.1f} at its end.  ",
        f"Run: {timing['date']}, {timing['minutes']:.0f} minutes from start to report; the load ran "
        f"{timing['load_s']:.0f} s, the node then drained in {timing['drain_s']:.0f} s.  ",
        "Node: the production web server (gunicorn, 2 uvicorn workers), two workers (`celery -A edgeportal worker "
        "-P solo`, both lanes, one torch thread each), `celery -A edgeportal beat` on its own, a private "
        "PostgreSQL and a private Redis (append-only file), each a real process; the sweep every "
        f"{os.environ.get('EDGE_SWEEP_EVERY_S', '15')} s with {os.environ.get('EDGE_SWEEP_GRACE_S', '10')} s of "
        "grace (the defaults). The tiny random-weight test model (`tests/tiny_model.py`) stands in for SmolLM2.  ",
        f"Load: {SENDERS} senders over {len(SOURCES)} machine sources, each waiting for its answer; workload prompts "
        "made unique (no cache hits), about 5 % of them long; deadlines: the default (10 s; 30 s for long prompts) "
        "for 70 %, 30 s for 20 %, 60 s for 10 %; priorities high 10 %, normal 75 %, low 15 %. A reader fetches "
        "the job list page (logged in), a job's JSON and `/readyz` twice a second.",
        "",
        f"Verdict: {verdict_line}",
        "",
        "### Faults and recovery",
        "",
        "Times in seconds from the fault. *Back*: the service answers again (for a killed worker: its jobs "
        "finished elsewhere, or it is back with its model). *Clients refused*: from the first submission answered "
        "neither 202 nor 429 to the next 202. *Longest gap*: the longest stretch without a job finishing done. "
        "*First done*: the first job sent after the fault that finished done. *Put back*: jobs a worker returned "
        "to their lane from a dead worker's lease; *re-queued*: jobs the sweep put back on Redis because the "
        "database had them unfinished and Redis did not (until the next fault).",
        "",
        "| at (s) | fault | back | clients refused | longest gap | first done | put back | re-queued |",
        "|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    t0 = timing["load_started"]
    for row in rows:
        fault = row["fault"]
        lines.append(
            f"| {fault.started - t0:.0f} | {fault.title} | {_s(row['back_s'])} | {_s(row['clients_refused_s'])} | "
            f"{_s(row['gap_s'])} | {_s(row['first_done_s'])} | {row['put_back']} | {row['requeued']} |"
        )
    lines += [
        "",
        "Submissions sent from each fault until the next (the last until the load ended):",
        "",
        "| fault | sent | accepted | done | failed | expired | 429 | 503 | other 5xx | no answer | slowest answer (s) "
        "| ran twice | pages 503 |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        lines.append(
            f"| {row['fault'].name} | {row['sent']} | {row['accepted']} | {row['done']} | {row['failed']} | "
            f"{row['expired']} | {row['refused_429']} | {row['unavailable_503']} | {row['other_5xx']} | "
            f"{row['no_answer']} | {_s(row['slowest_s'])} | {row['twice']} | {row['pages_503']} |"
        )
    held_rows = [row for row in rows if "held" in row]
    if held_rows:
        lines += ["", "Batches killed with their worker:", ""]
        for row in held_rows:
            held = row["held"]
            lines.append(
                f"- {row['fault'].name}: the worker held {held['jobs']} job(s); {held['done']} ended done "
                f"({held['done_elsewhere']} on the other worker), {held['in_time']} by their deadline, the last "
                f"{_s(held['last_done_s'])} s after the kill."
            )
    lines += [
        "",
        "### Checks",
        "",
        "| check | found |",
        "|---|---:|",
        f"| submissions | {len(answers)} ({answered}) |",
        f"| accepted (202) | {len(result['accepted'])} |",
        f"| jobs in the database | {len(result['jobs'])}: "
        + ", ".join(f"{n} {s}" for s, n in sorted(statuses.items()))
        + " |",
        f"| stored without a 202 reaching the sender (web killed mid-submit, sender gave up) | "
        f"{len(result['not_answered_202'])}, all in a final state |",
    ]
    for name, found in checks.items():
        shown = ", ".join(str(x) for x in found[:8]) + (" …" if len(found) > 8 else "")
        lines.append(f"| {name} | {len(found)}{f' ({shown})' if found else ''} |")
    twice = result["twice"]
    lines.append(
        f"| jobs the model ran more than once (workers' logs; allowed: delivery is at least once) | {len(twice)} |"
    )
    pages = Counter((what, status) for _, what, status in seen)
    read = ", ".join(f"{what} {status or 'no answer'}: {n}" for (what, status), n in sorted(pages.items()))
    lines.append(f"| reader's answers | {read} |")
    lines += ["", "### Failed and expired jobs, by reason", ""]
    if not result["failed"] and not result["expired"]:
        lines.append("None.")
    for kind in ("failed", "expired"):
        for reason, count in result[kind].most_common(8):
            lines.append(f"- {kind}, {count}: {reason}")
    return "\n".join(lines)


# --- the run ----------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=10_000, help="submissions over the run (default 10000)")
    parser.add_argument("--rate", type=float, default=20, help="submissions per second at most (default 20)")
    parser.add_argument("--lock-s", type=int, default=60, help="how long the table lock holds (default 60)")
    parser.add_argument("--faults", default=",".join(name for _, name in SCHEDULE), help="some of the schedule")
    parser.add_argument("--scale", type=float, default=1.0, help="multiply the schedule's times (a shorter try)")
    parser.add_argument("--no-write", action="store_true", help="print the section instead of writing it")
    parser.add_argument("--keep", action="store_true", help="keep the run's folder (logs, databases)")
    args = parser.parse_args()
    chosen = set(args.faults.split(","))
    schedule = [(at * args.scale, name) for at, name in SCHEDULE if name in chosen]
    for tool in ("redis-server", "runuser"):
        if shutil.which(tool) is None:
            print(f"make chaos needs {tool}", file=sys.stderr)
            return 2

    folder = Path(tempfile.mkdtemp(prefix="edgeportal-chaos-"))
    kept = ROOT / ".cache" / "chaos"
    shutil.rmtree(kept, ignore_errors=True)
    kept.mkdir(parents=True)
    run_started = now()
    redis_server = PrivateRedis(folder / "redis")
    postgres = PrivatePostgres()
    node: Node | None = None
    load: Load | None = None
    reader: Reader | None = None

    def interrupted(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupted)
    try:
        from tests.tiny_model import tiny_model_dir

        redis_server.start()
        postgres.start()
        postgres.create_database()
        (folder / "prometheus").mkdir()
        env = {
            "DJANGO_SETTINGS_MODULE": "edgeportal.settings",
            "DATABASE_URL": postgres.url,
            "REDIS_URL": redis_server.url,
            "EDGE_REDIS_PREFIX": PREFIX,
            "EDGE_MODEL": str(tiny_model_dir()),
            "EDGE_DEVICE": "cpu",
            "EDGE_MAX_PROMPT_TOKENS": "2048",  # the workload's shift logs run to 1 500 tokens
            "DEBUG": "false",
            "SECRET_KEY": "chaos-only",
            "ALLOWED_HOSTS": "127.0.0.1",
            "PROMETHEUS_MULTIPROC_DIR": str(folder / "prometheus"),
            "OMP_NUM_THREADS": "1",
            "PYTHONUNBUFFERED": "1",
        }
        os.environ.update(env)
        import django

        django.setup()
        from django.contrib.auth.models import User
        from django.core.management import call_command

        from edgeportal.accounts.services import roles_ensure
        from edgeportal.sources.services import source_create

        call_command("migrate", verbosity=0)
        tokens = {name: source_create(name=name, kind="mes")[1] for name in SOURCES}
        managers, _ = roles_ensure()
        password = "chaos-manager-pass"
        User.objects.create_user("chaos-manager", password=password).groups.add(managers)

        load_before = os.getloadavg()[0]
        node = Node(folder, {**os.environ, **env}, redis_server.client(), free_port())
        print(f"{time.strftime('%H:%M:%S')} starting the node in {folder}", flush=True)
        node.start()
        started_at = now()
        load = Load(node.url, tokens, total=args.jobs, rate=args.rate, prompts=harness.workload())
        reader = Reader(node.url, tokens[SOURCES[0]], load, password)
        load.start()
        reader.start()
        chaos = Chaos(node, redis_server, postgres, load, args.lock_s)
        faults: list[Fault] = []
        previous_end = started_at
        for at, name in schedule:
            wait = max(started_at + at, previous_end + 20 * args.scale) - now()
            if wait > 0:
                time.sleep(wait)
            faults.append(chaos.run(name))
            previous_end = now()
        while not load.done():
            time.sleep(30)
            print(f"{time.strftime('%H:%M:%S')} {len(load.answers)} of {args.jobs} sent", flush=True)
        load_ended = now()
        reader.stop()
        print(f"{time.strftime('%H:%M:%S')} load done; draining", flush=True)
        drain_s = drain(node.redis, timeout=240)
        logs = [p.log_path for p in node.workers.values()]
        result = verdict(load.answers, reader.seen, logs, node.redis)
        rows = fault_rows(load.answers, faults, result, reader.seen, load_ended)
        timing = {
            "date": datetime.now(UTC).strftime("%Y-%m-%d"),
            "minutes": (now() - run_started) / 60,
            "load_s": load_ended - started_at,
            "drain_s": drain_s,
            "load_before": load_before,
            "load_after": os.getloadavg()[0],
            "load_started": started_at,
        }
        section = report(args, result, rows, load.answers, reader.seen, timing)
        (kept / "answers.json").write_text(json.dumps([asdict(a) for a in load.answers]))
        (kept / "faults.json").write_text(json.dumps([asdict(f) for f in faults]))
        (kept / "report.md").write_text(section)
        print(section)
        if not args.no_write:
            harness.write_section("reliability", section)
        return 0 if result["passed"] else 1
    finally:
        if reader is not None:
            reader.stop()
        if load is not None:
            load.stop()
        if node is not None:
            node.stop()
            for process in node.processes():
                if process.log_path.exists():
                    shutil.copy(process.log_path, kept / process.log_path.name)
        redis_server.stop()
        postgres.remove()
        if args.keep:
            print(f"kept {folder}")
        else:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
