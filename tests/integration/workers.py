"""Start and stop real Celery worker and beat processes against the test database and the real Redis."""

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import redis
from django.conf import settings
from django.db import connection

ROOT = Path(__file__).resolve().parents[2]


def test_database_url() -> str:
    db = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{db['NAME']}"
    user = db["USER"] or ""
    auth = f"{user}:{db['PASSWORD']}@" if db["PASSWORD"] else (f"{user}@" if user else "")
    return f"postgres://{auth}{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


def process_env(**env: str) -> dict[str, str]:
    """What a process started by a test shares with it: the test database, Redis prefix and metrics folder."""
    return {
        **os.environ,
        "DATABASE_URL": test_database_url(),
        "REDIS_URL": settings.REDIS_URL,
        "EDGE_REDIS_PREFIX": settings.EDGE_REDIS_PREFIX,
        # The test run's own metrics folder (tests/conftest.py): the worker's numbers reach the web's /metrics.
        "PROMETHEUS_MULTIPROC_DIR": os.environ["PROMETHEUS_MULTIPROC_DIR"],
        "EDGE_DEVICE": "cpu",  # the CPU pool the tests read, on a machine with a GPU too
        # The reference engine: the tests' timings (a batch that takes seconds) are its. The llama.cpp engine's
        # own tests ask for it (tests/integration/test_llama_worker.py).
        "EDGE_ENGINE": "transformers",
        **env,
    }


class ChildProcess:
    """A process a test started, its output in a log file."""

    log_path: Path
    process: subprocess.Popen | None = None

    def spawn(self, command: list[str], env: dict[str, str]) -> None:
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-5000:]

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.kill()


class WorkerProcess(ChildProcess):
    def __init__(self, name: str, *, model_path: Path, log_dir: Path, **env: str):
        self.name = f"{name}@test"
        self.log_path = log_dir / f"{name}.log"
        self.env = process_env(**{"EDGE_MODEL": str(model_path), **env})

    def start(self, timeout: float = 90) -> "WorkerProcess":
        spawned_at = time.time()
        self.spawn(
            [
                sys.executable, "-m", "celery", "-A", "edgeportal", "worker",
                "-P", "solo", "-n", self.name, "--loglevel=INFO",
                "--without-mingle", "--without-gossip", "--without-heartbeat",
                "-Q", f"{settings.EDGE_REDIS_PREFIX}:celery",  # our own Celery queue: no stray periodic tasks
            ],
            self.env,
        )  # fmt: skip
        client = redis.Redis.from_url(settings.REDIS_URL, decode_responses=True)
        pattern = f"{settings.EDGE_REDIS_PREFIX}:pool:*:workers:{self.name}"  # in whichever pool it serves
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"worker {self.name} exited early:\n{self.log()}")
            if any(self._started_since(client, key, spawned_at) for key in client.scan_iter(pattern)):
                return self
            time.sleep(0.1)
        raise TimeoutError(f"worker {self.name} not ready after {timeout}s:\n{self.log()}")

    @staticmethod
    def _started_since(client: redis.Redis, key: str, spawned_at: float) -> bool:
        """The heartbeat of this process, which starts once the model is loaded and warmed up: a worker of the
        same name stopped a moment ago leaves its own for a few seconds, and must not count."""
        started_at = client.hget(key, "started_at")
        return bool(started_at) and float(started_at) >= spawned_at


class WebServer(ChildProcess):
    """The production web server as `make run` starts it, on a free port, sharing the test's database and Redis."""

    def __init__(self, *, model_path: Path, log_dir: Path, **env: str):
        self.log_path = log_dir / "web.log"
        self.env = process_env(**{"EDGE_MODEL": str(model_path), "WEB_WORKERS": "1", **env})
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 90) -> "WebServer":
        from edgeportal.serving import web_command

        # As `make run` does first: WhiteNoise serves the collected files (htmx and its SSE extension among them).
        subprocess.run([sys.executable, "manage.py", "collectstatic", "--noinput", "-v0"], cwd=ROOT, env=self.env,
                       check=True)  # fmt: skip
        self.spawn(web_command(host="127.0.0.1", port=self.port), self.env)

        def answers():
            if self.process.poll() is not None:
                raise RuntimeError(f"the web server exited early:\n{self.log()}")
            try:
                with urllib.request.urlopen(f"{self.url}/healthz", timeout=5) as response:
                    return response.status == 200
            except OSError:
                return False

        wait_until(answers, timeout=timeout, what="the web server to answer")
        return self


class ExitsWorkerProcess(ChildProcess):
    """The exits worker as `make run` starts it (edgeportal.serving): deliveries only, no model, no batch loop."""

    def __init__(self, name: str, *, log_dir: Path, **env: str):
        self.name = f"{name}@test"
        self.log_path = log_dir / f"{name}.log"
        self.env = process_env(**env)
        self.queue = f"{settings.EDGE_REDIS_PREFIX}:exits"

    def start(self, timeout: float = 60) -> "ExitsWorkerProcess":
        from edgeportal.serving import exits_worker_command

        command = exits_worker_command(name=self.name, queue=self.queue)
        self.spawn([*command, "--without-heartbeat"], self.env)
        # Celery logs "<name> ready." once it consumes its queue.
        wait_until(lambda: self._ready(), timeout=timeout, what=f"the exits worker {self.name}")
        return self

    def _ready(self) -> bool:
        if self.process.poll() is not None:
            raise RuntimeError(f"exits worker {self.name} exited early:\n{self.log()}")
        return f"{self.name} ready." in self.log()

    def forget_its_messages(self) -> None:
        """Delete what kombu keeps outside our prefix for this queue: its bindings, and the messages a killed worker
        left unacknowledged (Redis would hand them back to a dead test's queue an hour later)."""
        client = redis.Redis.from_url(settings.REDIS_URL)
        client.delete(f"_kombu.binding.{self.queue}", f"_kombu.binding_permanent.{self.queue}")
        for tag, payload in client.hscan_iter("unacked"):
            if self.queue.encode() in payload:
                client.hdel("unacked", tag)
                client.zrem("unacked_index", tag)


class ReceiverProcess(ChildProcess):
    """tests/integration/receiver.py in a process of its own: it logs each request as a JSON line."""

    def __init__(self, *, log_dir: Path, secret: str, mode: str = "ok", fail_first: int = 0, hang_s: float = 60):
        self.log_path = log_dir / "receiver.out"
        self.requests_path = log_dir / "receiver-requests.jsonl"
        self.port_path = log_dir / "receiver.port"
        self.options = ["--secret", secret, "--mode", mode, "--fail-first", str(fail_first), "--hang-s", str(hang_s)]

    def start(self) -> "ReceiverProcess":
        self.port_path.unlink(missing_ok=True)
        script = ROOT / "tests" / "integration" / "receiver.py"
        paths = ["--log", str(self.requests_path), "--port-file", str(self.port_path)]
        self.spawn([sys.executable, str(script), *self.options, *paths], dict(os.environ))
        port = wait_until(lambda: self.port_path.exists() and self.port_path.read_text(), what="the receiver's port")
        self.url = f"http://127.0.0.1:{port}/hooks/edgeportal"
        return self

    def requests(self) -> list[dict]:
        from tests.integration.receiver import read_log

        return read_log(self.requests_path)


class BeatProcess(ChildProcess):
    """`celery -A edgeportal beat` on its own, as a node runs it beside (or without) its workers."""

    def __init__(self, *, log_dir: Path, **env: str):
        self.log_path = log_dir / "beat.log"
        self.schedule = log_dir / "celerybeat-schedule"
        self.env = process_env(**env)

    def start(self) -> "BeatProcess":
        from edgeportal.serving import beat_command

        self.spawn(beat_command(schedule=self.schedule), self.env)  # as `make run` starts it
        return self


def wait_until(predicate, *, timeout: float = 60, interval: float = 0.1, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
