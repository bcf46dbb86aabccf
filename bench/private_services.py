"""A private Redis and a private PostgreSQL cluster for a run that restarts them (make chaos).

The machine's own Redis (6379) and PostgreSQL (5432) serve other people's tests: a run that kills, flushes or
locks its services starts its own, on free ports in temporary folders, and removes them at the end.
"""

from __future__ import annotations

import glob
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import redis

from edgeportal.supervisor import die_with_parent


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _wait(predicate, *, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise TimeoutError(f"{what} did not happen within {timeout:.0f} s")


class PrivateRedis:
    """redis-server on a free port with its own folder. Persistence: an append-only file (fsync every second),
    as a node that keeps its queue across a restart would run it."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.folder.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen | None = None

    def client(self) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=5)

    def start(self) -> None:
        command = [
            "redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.folder),
            "--appendonly", "yes", "--appendfsync", "everysec", "--save", "",
            "--logfile", str(self.folder / "redis.log"),
        ]  # fmt: skip
        # It dies with the run, even one killed outright (Linux).
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, preexec_fn=die_with_parent)
        _wait(self.answers, timeout=30, what="the private Redis answering")

    def answers(self) -> bool:
        try:
            return bool(self.client().ping())
        except redis.RedisError:
            return False

    def shutdown(self) -> None:
        """A clean stop (SIGTERM, as systemd stops it): the append-only file is flushed, so a restart finds every
        key again. Not the SHUTDOWN command: redis-py retries a command whose connection closes, for seconds."""
        self.process.terminate()
        self.process.wait(30)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


class PrivatePostgres:
    """A PostgreSQL cluster of its own, run as the `postgres` user (initdb refuses root) with trust
    authentication, on a free port and a socket folder of its own. A run killed outright (SIGKILL) leaves it
    running: `runuser -u postgres -- pg_ctl -D /tmp/edgeportal-chaos-pg-*/data stop` stops it."""

    def __init__(self):
        versions = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda path: int(Path(path).parent.name))
        if not versions:
            raise RuntimeError("PostgreSQL is not installed (/usr/lib/postgresql/*/bin): apt-get install postgresql")
        self.bin = Path(versions[-1])
        # Its own folder, owned by postgres: a root-owned temporary folder is closed to that user.
        self.folder = Path(tempfile.mkdtemp(prefix="edgeportal-chaos-pg-"))
        shutil.chown(self.folder, "postgres", "postgres")
        self.data = self.folder / "data"
        self.port = free_port()
        self.url = f"postgres://postgres@127.0.0.1:{self.port}/edgeportal"
        self.started = False

    def _as_postgres(self, *command: str) -> None:
        subprocess.run(["runuser", "-u", "postgres", "--", *command], check=True, capture_output=True, text=True)

    def start(self) -> None:
        if not self.data.exists():
            self._as_postgres(str(self.bin / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres")
        options = f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1"
        self._as_postgres(
            str(self.bin / "pg_ctl"), "-D", str(self.data), "-o", options, "-l", str(self.folder / "postgres.log"),
            "-w", "-t", "60", "start",
        )  # fmt: skip
        self.started = True

    def create_database(self) -> None:
        import psycopg

        with psycopg.connect(self.admin_url(), autocommit=True) as connection:
            connection.execute("CREATE DATABASE edgeportal")

    def admin_url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def answers(self) -> bool:
        import psycopg

        try:
            with psycopg.connect(self.url.replace("postgres://", "postgresql://"), connect_timeout=2) as connection:
                connection.execute("SELECT 1")
            return True
        except psycopg.Error:
            return False

    def stop(self, mode: str = "fast") -> None:
        """fast: every client is disconnected and the cluster shuts down cleanly; immediate: at once."""
        if self.started:
            self._as_postgres(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop")
            self.started = False

    def remove(self) -> None:
        try:
            self.stop("immediate")
        except subprocess.CalledProcessError:
            pass
        shutil.rmtree(self.folder, ignore_errors=True)
