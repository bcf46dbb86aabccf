"""How the node is served: the commands of the production web server (shared by `make run` and the
benchmarks), the development server, the workers and beat, and `python -m edgeportal.serving`, which runs a
worker, the exits worker (deliveries), beat and a web server under the supervisor."""

from __future__ import annotations

import argparse
import logging
import socket
import sys
from pathlib import Path

from edgeportal.delivery.queues import exits_queue
from edgeportal.supervisor import Program, Supervisor

ROOT = Path(__file__).resolve().parent.parent
GUNICORN_CONFIG = ROOT / "edgeportal" / "gunicorn.conf.py"


def address(host: str, port: int) -> str:
    """host:port as servers bind it ([host]:port for IPv6)."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def web_command(
    *, host: str, port: int, python: str = sys.executable, app: str = "edgeportal.asgi:application"
) -> list[str]:
    """gunicorn with uvicorn workers on Django's ASGI app, sized in edgeportal/gunicorn.conf.py."""
    return [python, "-m", "gunicorn", "--config", str(GUNICORN_CONFIG), "--bind", address(host, port), app]


def dev_web_command(*, host: str, port: int, reload: bool = True, python: str = sys.executable) -> list[str]:
    """Django's development server (by default reloading on code changes): never for a node left running."""
    return [python, str(ROOT / "manage.py"), "runserver", address(host, port)] + ([] if reload else ["--noreload"])


def worker_command(*, name: str, python: str = sys.executable) -> list[str]:
    """One Celery worker process with the batch loop and the resident model (always -P solo)."""
    return [python, "-m", "celery", "-A", "edgeportal", "worker", "-P", "solo", "-n", name, "--loglevel=INFO"]


BEAT_SCHEDULE = ROOT / ".cache" / "celerybeat-schedule"


def beat_command(*, schedule: Path = BEAT_SCHEDULE, python: str = sys.executable) -> list[str]:
    """Celery beat as a process of its own, never a worker's `--beat`: Celery forks that one from the worker,
    and a process forked while SQLite's files are open (the worker's) gets "disk I/O error" and "locking
    protocol" from every connection it opens (SQLite: no open database across a fork)."""
    return [python, "-m", "celery", "-A", "edgeportal", "beat", "-s", str(schedule), "--loglevel=INFO"]


def node_programs(*, host: str, port: int, dev: bool, worker_name: str, exits_worker_name: str) -> list[Program]:
    """What `make run` supervises: one worker, the exits worker, beat and the web server."""
    web = dev_web_command if dev else web_command
    return [
        Program("worker", worker_command(name=worker_name)),
        # Deliveries to webhooks: a slow or silent receiver holds this process, never the model worker.
        Program("exits", exits_worker_command(name=exits_worker_name, queue=exits_queue())),
        Program("beat", beat_command()),
        Program("web", web(host=host, port=port)),
    ]


def exits_worker_command(*, name: str, queue: str, threads: int = 4, python: str = sys.executable) -> list[str]:
    """The exits worker: sends deliveries (edgeportal.delivery) from its own queue, in threads (each mostly waits
    on a receiver), with no model and no batch loop (a worker that consumes only that queue starts none).
    One message reserved per thread: a task held by a worker that dies waits for nobody (the sweep resends)."""
    return [
        python, "-m", "celery", "-A", "edgeportal", "worker", "-P", "threads", "-c", str(threads), "-Q", queue,
        "-n", name, "--prefetch-multiplier", "1", "--without-mingle", "--without-gossip", "--loglevel=INFO",
    ]  # fmt: skip


def port_is_free(host: str, port: int) -> bool:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the servers bind: TIME_WAIT is no obstacle
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--dev", action="store_true", help="Django's development server instead of gunicorn")
    parser.add_argument("--worker-name", default="worker1@%h")
    parser.add_argument("--exits-worker-name", default="exits1@%h")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not port_is_free(args.host, args.port):
        logging.getLogger("edgeportal.supervisor").error(
            "%s is in use (another `make run`?): stop it or set PORT.", address(args.host, args.port)
        )
        return 1
    programs = node_programs(host=args.host, port=args.port, dev=args.dev, worker_name=args.worker_name,
                             exits_worker_name=args.exits_worker_name)  # fmt: skip
    return Supervisor(programs).run()


if __name__ == "__main__":
    sys.exit(main())
