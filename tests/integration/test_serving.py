"""The production web server as `make run` starts it: gunicorn with uvicorn workers on the ASGI app."""

import contextlib
import os
import signal
import socket
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from edgeportal.serving import port_is_free, web_command
from tests.integration.workers import wait_until
from tests.test_supervisor import alive

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def get(url: str):
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read()


def web_workers(master: int) -> set[int]:
    return {int(pid) for pid in Path(f"/proc/{master}/task/{master}/children").read_text().split()}


@contextlib.contextmanager
def started_web_server(tmp_path, **env):
    """gunicorn on a free port, with its own metrics folder and an empty database it never needs."""
    port = free_port()
    metrics = tmp_path / "prometheus"
    metrics.mkdir()
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(metrics), "DATABASE_URL": f"sqlite:///{tmp_path}/db", **env}
    log = (tmp_path / "gunicorn.log").open("wb")
    command = web_command(host="127.0.0.1", port=port)
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=log, start_new_session=True)
    url = f"http://127.0.0.1:{port}"

    def answers():
        assert process.poll() is None, (tmp_path / "gunicorn.log").read_text()
        try:
            return get(f"{url}/healthz")[0] == 200
        except OSError:
            return False

    try:
        wait_until(answers, timeout=90, what="gunicorn to answer")
        wait_until(lambda: len(web_workers(process.pid)) == 2, timeout=30, what="two web workers")
        yield process, url, metrics, port
    finally:
        if process.poll() is None:
            process.terminate()
            process.wait(30)
        try:
            os.killpg(process.pid, signal.SIGKILL)  # any worker a test left behind
        except ProcessLookupError:
            pass


@pytest.fixture
def web_server(tmp_path):
    with started_web_server(tmp_path) as server:
        yield server


def test_it_serves_the_asgi_app_with_two_workers(web_server):
    process, url, _, _ = web_server
    status, headers, body = get(f"{url}/healthz")
    assert (status, headers["server"], body) == (200, "uvicorn", b'{"status": "ok"}')
    status, _, body = get(f"{url}/no-such-page")
    assert status == 404 and b"There is no page at" in body
    assert len(web_workers(process.pid)) == 2


def test_a_killed_web_worker_is_replaced_and_marked_dead_for_the_metrics(web_server):
    process, url, metrics, _ = web_server
    victim = min(web_workers(process.pid))
    live_gauge = metrics / f"gauge_livesum_{victim}.db"  # what a live gauge of that process would have written
    live_gauge.write_bytes(b"")
    os.kill(victim, signal.SIGKILL)
    wait_until(lambda: not live_gauge.exists(), timeout=30, what="child_exit to mark the worker dead")
    wait_until(lambda: len(web_workers(process.pid) - {victim}) == 2, timeout=60, what="a new web worker")
    assert get(f"{url}/healthz")[0] == 200


def test_sigterm_stops_the_server_and_its_workers(web_server):
    process, _, _, _ = web_server
    workers = web_workers(process.pid)
    process.send_signal(signal.SIGTERM)
    assert process.wait(60) == 0
    assert not any(alive(pid) for pid in workers)


def test_web_workers_stop_when_the_master_is_killed_so_a_restart_can_bind_the_port(web_server):
    process, _, _, _ = web_server
    workers = web_workers(process.pid)
    process.kill()
    process.wait()
    wait_until(lambda: not any(alive(pid) for pid in workers), timeout=30, what="orphaned web workers to stop")


def listening_sockets(port: int) -> set[str]:
    """Inodes of the IPv4 sockets listening on 127.0.0.1:port (state 0A in /proc/net/tcp)."""
    inodes = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[1] == f"0100007F:{port:04X}" and fields[3] == "0A":
            inodes.add(fields[9])
    return inodes


def sockets_of(pid: int) -> set[str]:
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:  # closed meanwhile
            continue
        if target.startswith("socket:["):
            inodes.add(target[len("socket:[") : -1])
    return inodes


def listeners_held(port: int, master: int) -> tuple[set[str], dict[int, set[str]]]:
    """The sockets listening on the port, and which of them each web worker holds."""
    listening = listening_sockets(port)
    return listening, {pid: sockets_of(pid) & listening for pid in web_workers(master)}


def test_by_default_the_web_workers_share_one_listening_socket(web_server):
    process, _, _, port = web_server
    listening, held = listeners_held(port, process.pid)
    assert len(listening) == 1
    assert list(held.values()) == [listening, listening]


def test_with_reuse_port_each_web_worker_listens_on_a_socket_of_its_own(tmp_path):
    """WEB_REUSE_PORT=true: the kernel hashes each new connection to one worker's socket (SO_REUSEPORT); the
    master holds none, or it would take connections that nobody accepts."""
    with started_web_server(tmp_path, WEB_REUSE_PORT="true") as (process, url, _, port):
        # each worker binds its own after the fork: the second may still be starting when the first answers
        wait_until(lambda: len(listening_sockets(port)) == 2, timeout=30, what="both workers to listen")
        listening, held = listeners_held(port, process.pid)
        assert len(listening) == 2
        assert sorted(len(inodes) for inodes in held.values()) == [1, 1]
        assert set.union(*held.values()) == listening
        assert not sockets_of(process.pid) & listening
        # SO_REUSEPORT lets sockets that all ask for it share a port; make run's check (which does not ask)
        # still sees it in use, so a second `make run` refuses instead of taking half the connections.
        assert not port_is_free("127.0.0.1", port)
        assert get(f"{url}/healthz")[0] == 200
