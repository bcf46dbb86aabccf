"""What the benchmarks share: the workload, percentiles, a running pipeline, and BENCHMARKS.md sections.

Import it before anything of Django: configure() sets the environment the pipeline runs with.
"""

from __future__ import annotations

import json
import os
import platform
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from edgeportal.lab.simulator import percentile  # noqa: E402, F401 - the benchmarks' percentile, shared with the lab
from edgeportal.serving import dev_web_command, web_command  # noqa: E402 - the commands `make run`/`make dev` use
from edgeportal.supervisor import die_with_parent  # noqa: E402 - kills the pipeline with the benchmark

WORKLOAD = ROOT.parent / "shared" / "workload" / "factory_prompts.jsonl"
BENCHMARKS = ROOT / "BENCHMARKS.md"
BENCH_DB = ROOT / ".cache" / "bench.sqlite3"
PREFIX = f"edgeportal-bench:{uuid.uuid4().hex[:8]}"


# The worker and the web server each in a session of its own, as `make run` starts them (edgeportal.supervisor):
# the kernel may share the CPU between sessions first (autogroups), which decides what a nice value does.
AS_MAKE_RUN = {"start_new_session": True, "preexec_fn": die_with_parent}


def configure(**env: str) -> None:
    """The settings every process of the benchmark shares (its own database and Redis prefix). The database
    is a SQLite file, or with BENCH_DATABASE_URL a PostgreSQL database that each pipeline drops and
    creates anew (postgres://postgres@127.0.0.1:5432/edgeportal_bench, say: never a database you keep)."""
    os.environ.update(
        DJANGO_SETTINGS_MODULE="edgeportal.settings",
        DATABASE_URL=os.environ.get("BENCH_DATABASE_URL") or f"sqlite:///{BENCH_DB}",
        EDGE_REDIS_PREFIX=PREFIX,
        EDGE_RATE_LIMIT_PER_MINUTE="0",
        EDGE_DEVICE="cpu",  # the benchmarks measure this CPU node, on a machine with a GPU too
        DEBUG="false",
        SECRET_KEY="bench-only",
        ALLOWED_HOSTS="127.0.0.1",
        **env,
    )


def workload() -> list[str]:
    return [json.loads(line)["prompt"] for line in WORKLOAD.read_text().splitlines() if line.strip()]


def load_prompts(count: int) -> list[str]:
    lines = workload()
    return [lines[i % len(lines)] for i in range(count)]


def machine() -> str:
    import torch

    return (
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}, torch {torch.__version__}, CPU only"
    )


def write_section(name: str, text: str, path: Path = BENCHMARKS) -> None:
    """Replace this benchmark's section of BENCHMARKS.md, keeping the others."""
    begin, end = f"<!-- bench:{name} -->", f"<!-- /bench:{name} -->"
    block = f"{begin}\n{text.strip()}\n{end}"
    current = path.read_text() if path.exists() else "# Benchmarks\n\nEach section comes from one run of its command.\n"
    pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end), re.DOTALL)
    updated = pattern.sub(lambda _: block, current) if pattern.search(current) else current.rstrip() + "\n\n" + block
    path.write_text(updated.rstrip() + "\n")


# The web servers a pipeline can run: `make run`'s production server (the default) and `make dev`'s.
WEB_SERVER = "gunicorn with uvicorn workers (`make run`'s web server)"  # the default, as the reports name it
WEB_SERVERS = {
    "production": lambda port: web_command(host="127.0.0.1", port=port),
    "production-asgi-only": lambda port: web_command(host="127.0.0.1", port=port, app="edgeportal.asgi:asgi_only"),
    "runserver": lambda port: dev_web_command(host="127.0.0.1", port=port, reload=False),
}


def database_name() -> str:
    """The benchmark's database, as the reports name it."""
    return "PostgreSQL" if os.environ["DATABASE_URL"].startswith("postgres") else "SQLite"


def _postgres_recreate(url: str) -> None:
    import psycopg
    from psycopg import sql

    name = urlsplit(url).path.lstrip("/")
    with psycopg.connect(url.rsplit("/", 1)[0] + "/postgres", autocommit=True) as admin:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


class Pipeline:
    """A web server and one worker, as `make run` starts them, on the benchmark's database and Redis prefix."""

    def __init__(
        self,
        port: int,
        *,
        window_ms: int,
        workers: dict[str, dict[str, str]] | None = None,
        server: str = "production",
    ):
        self.port = port
        self.window_ms = window_ms
        self.server = server  # a key of WEB_SERVERS
        # Worker name -> extra environment (EDGE_WORKER_LANES, OMP_NUM_THREADS, ...); one plain worker by default.
        self.workers = workers or {"bench": {}}
        self.processes: list[subprocess.Popen] = []
        self.token = ""

    def __enter__(self) -> Pipeline:
        import django

        django.setup()
        from django.core.management import call_command
        from django.db import connections

        connections.close_all()  # a second pipeline in the same run starts on a new database
        BENCH_DB.parent.mkdir(exist_ok=True)
        for path in (BENCH_DB, BENCH_DB.with_name(BENCH_DB.name + "-wal"), BENCH_DB.with_name(BENCH_DB.name + "-shm")):
            path.unlink(missing_ok=True)  # a log left by a killed process must not be replayed into the new file
        if os.environ["DATABASE_URL"].startswith("postgres"):
            _postgres_recreate(os.environ["DATABASE_URL"])

        from edgeportal.sources.services import source_create

        call_command("migrate", verbosity=0)
        _, self.token = source_create(name="bench", kind="mes")
        env = {**os.environ, "EDGE_WINDOW_MS": str(self.window_ms)}
        for name, extra in self.workers.items():
            log = (ROOT / ".cache" / f"bench-worker-{name}.log").open("w")
            self.processes.append(
                subprocess.Popen(
                    [sys.executable, "-m", "celery", "-A", "edgeportal", "worker", "-P", "solo", "-n", f"{name}@%h",
                     "--without-mingle", "--without-gossip", "--without-heartbeat"],
                    cwd=ROOT, env={**env, **extra}, stdout=log, stderr=subprocess.STDOUT, **AS_MAKE_RUN,
                )
            )  # fmt: skip
        web_log = (ROOT / ".cache" / f"bench-web-{self.server}.log").open("w")
        self.processes.append(
            subprocess.Popen(
                WEB_SERVERS[self.server](self.port),
                cwd=ROOT,
                env=env,
                stdout=web_log,
                stderr=subprocess.STDOUT,
                **AS_MAKE_RUN,
            )
        )
        self._wait_ready()
        return self

    def __exit__(self, *exc) -> None:
        for process in self.processes:
            process.terminate()
        for process in self.processes:
            try:
                process.wait(60)
            except subprocess.TimeoutExpired:  # a worker still deep in a backlog of batches
                process.kill()
                process.wait()
        from edgeportal.core.queueing import get_queue

        client = get_queue().redis
        keys = list(client.scan_iter(f"{PREFIX}:*"))
        if keys:
            client.delete(*keys)

    def _wait_ready(self) -> None:
        from edgeportal.core.queueing import get_queue

        redis_client = get_queue().redis
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            if any(p.poll() is not None for p in self.processes):
                raise RuntimeError("a benchmark process exited; see .cache/bench-worker-*.log and bench-web-*.log")
            if len(redis_client.keys(f"{PREFIX}:pool:*:workers:*")) >= len(self.workers):
                try:
                    urllib.request.urlopen(f"http://127.0.0.1:{self.port}/login/", timeout=2)
                    return
                except OSError:
                    pass
            time.sleep(0.2)
        raise TimeoutError("the pipeline did not start")

    def set_max_batch_size(self, size: int) -> None:
        self.update_settings(max_batch_size=size)

    def update_settings(self, **values) -> None:
        """Change scheduler settings live, as the tuning page does (workers pick them up within a second)."""
        from edgeportal.core.queueing import get_queue
        from inference.settings import SchedulerSettings
        from inference.store.queue import SettingsStore

        SettingsStore(get_queue(), SchedulerSettings()).update(**values)

    def post(self, body: dict) -> dict:
        """POST a job; returns the HTTP status, the JSON answer, the round trip as the client saw it and
        the server's own time (its Server-Timing header)."""
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}/api/jobs",
            data=json.dumps(body).encode(),
            headers={"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"},
            method="POST",
        )
        sent = time.perf_counter()
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                status, answer, headers = response.status, json.loads(response.read()), response.headers
        except urllib.error.HTTPError as error:  # 4xx and 5xx answers are results too (429s in overload)
            status, answer, headers = error.code, json.loads(error.read() or b"{}"), error.headers
        round_trip_ms = (time.perf_counter() - sent) * 1000
        return {"status": status, "body": answer, "round_trip_ms": round_trip_ms, "server_ms": server_ms(headers)}

    def submit(self, prompt: str, **fields) -> dict:
        """POST one prompt (and more fields of the API) that must be accepted; returns the API's answer plus
        the round trip."""
        answer = self.post({"prompt": prompt, **fields})
        if answer["status"] >= 400:
            raise RuntimeError(f"job refused: {answer['status']} {answer['body']}")
        return {**answer["body"], "round_trip_ms": answer["round_trip_ms"]}

    def wait(self, job_ids: list[int], timeout: float = 900) -> list:
        from edgeportal.jobs.models import Job

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            jobs = list(Job.objects.filter(pk__in=job_ids).select_related("latency"))
            if all(job.is_finished for job in jobs):
                failed = [job for job in jobs if job.status != Job.Status.DONE]
                if failed:
                    raise RuntimeError(f"{len(failed)} job(s) failed: {failed[0].error}")
                return jobs
            time.sleep(0.25)
        raise TimeoutError("jobs did not finish")


def server_ms(headers) -> float:
    """The app;dur=<ms> of a Server-Timing header (NaN without one)."""
    for metric in (headers.get("Server-Timing") or "").split(","):
        name, _, params = metric.strip().partition(";")
        if name == "app" and params.startswith("dur="):
            return float(params[4:])
    return float("nan")
