"""gunicorn settings of the production web server (`make run`, the benchmarks, docs/deploy's systemd unit).

Uvicorn workers on Django's ASGI app: a long-lived streaming response waits on the event loop, not on a
thread of its own, so one worker holds many. Sizing for a 2-core node: two workers, one per core. A process
runs Python on one core at a time, so one worker would leave the second core to the model during a burst of
submissions; more than two would only add memory (a worker is a whole Django process) and contend for the
same cores. The model's worker runs at a lower CPU priority (EDGE_WORKER_NICE), so the web goes first. Each
worker runs the JSON API and the pages on small pools of threads of their own, one for writes and one for
reads of each (WEB_THREADS each), and the probes on another (edgeportal.asgi). gunicorn's master replaces a
worker that dies or hangs.
"""

import os
from pathlib import Path

from edgeportal.serving import address
from inference.settings import env_bool

# Like edgeportal.core.metrics: the workers' metric files go here unless the environment names a folder.
os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", str(Path(__file__).resolve().parents[1] / ".cache" / "prometheus"))
# Pages and the JSON API run on a fixed pool of threads (edgeportal.asgi): each keeps its database connection
# between requests instead of opening one per request (1.2 ms of CPU on SQLite; on PostgreSQL also a server
# process, about 8 ms). The streaming paths close theirs at the end of each request (StreamingHandler).
os.environ.setdefault("DB_CONN_MAX_AGE", "60")

bind = address(os.getenv("HOST", "127.0.0.1"), int(os.getenv("PORT", "8000")))
worker_class = "uvicorn_worker.UvicornWorker"
workers = int(os.getenv("WEB_WORKERS", "2"))
# WEB_REUSE_PORT=true: each worker listens on a socket of its own (SO_REUSEPORT), and the kernel spreads new
# connections over them by a hash of the client's address and port, instead of the worker that wakes first
# accepting a whole burst from one shared socket. Off by default: on a 2-core node it made no difference that
# its noise did not hide (BENCHMARKS.md, web server), and it has a price: a hung worker keeps its share of new
# connections waiting until gunicorn replaces it (`timeout`), and a stopping worker's unaccepted connections
# are reset unless the kernel hands them on (sysctl net.ipv4.tcp_migrate_req=1). And another process of the same
# user that asks for SO_REUSEPORT too may bind the port beside them and take a share of the connections
# (`make run` checks the port is free first; the systemd unit does not).
reuse_port = env_bool("WEB_REUSE_PORT", "false")
# A worker whose event loop has not checked in for this long is killed and replaced.
timeout = 30
# On stop or restart, requests (and streams) in flight get this long to finish.
graceful_timeout = 10
keepalive = 5
proc_name = "edgeportal-web"
control_socket_disable = True  # nothing uses gunicornc; a second server on the node would fight over its socket
errorlog = "-"
accesslog = "-" if os.getenv("WEB_ACCESS_LOG", "").lower() in ("1", "true", "yes", "on") else None
# X-Forwarded-For/-Proto are believed only from these addresses (a TLS proxy on the node itself by default).
forwarded_allow_ips = os.getenv("FORWARDED_ALLOW_IPS", "127.0.0.1,::1")


def post_fork(server, worker):
    """A uvicorn worker never notices its master's death: let the kernel stop it, or orphans would keep the
    port and a restarted server could not bind it (with WEB_REUSE_PORT, would share it unseen)."""
    from edgeportal.supervisor import die_with_parent

    die_with_parent()


def post_worker_init(worker):
    """Load the tokenizer now (a few hundred ms), not in a burst's first submission: after a restart the first
    requests would otherwise wait for it while admission plans their deadlines."""
    from edgeportal.prompts.tokens import count_tokens

    try:
        count_tokens("warm up")
    except Exception:  # a model that cannot be read yet: the first request says why
        worker.log.exception("could not load the tokenizer at start")


def child_exit(server, worker):
    """A web worker exited (or was killed): drop its live gauges from /metrics; its counters stay counted."""
    from prometheus_client import multiprocess  # after the folder is in the environment

    multiprocess.mark_process_dead(worker.pid)
