"""The production web server as `make run` starts it: gunicorn with uvicorn workers on the ASGI app."""

import os
import signal
import socket
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from edgeportal.serving import web_command
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


@pytest.fixture
def web_server(tmp_path):
    """gunicorn on a free port, with its own metrics folder and an empty database it never needs."""
    port = free_port()
    metrics = tmp_path / "prometheus"
    metrics.mkdir()
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(metrics), "DATABASE_URL": f"sqlite:///{tmp_path}/db"}
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

    wait_until(answers, timeout=90, what="gunicorn to answer")
    wait_until(lambda: len(web_workers(process.pid)) == 2, timeout=30, what="two web workers")
    yield process, url, metrics
    if process.poll() is None:
        process.terminate()
        process.wait(30)
    try:
        os.killpg(process.pid, signal.SIGKILL)  # any worker a test left behind
    except ProcessLookupError:
        pass


def test_it_serves_the_asgi_app_with_two_workers(web_server):
    process, url, _ = web_server
    status, headers, body = get(f"{url}/healthz")
    assert (status, headers["server"], body) == (200, "uvicorn", b'{"status": "ok"}')
    status, _, body = get(f"{url}/no-such-page")
    assert status == 404 and b"There is no page at" in body
    assert len(web_workers(process.pid)) == 2


def test_a_killed_web_worker_is_replaced_and_marked_dead_for_the_metrics(web_server):
    process, url, metrics = web_server
    victim = min(web_workers(process.pid))
    live_gauge = metrics / f"gauge_livesum_{victim}.db"  # what a live gauge of that process would have written
    live_gauge.write_bytes(b"")
    os.kill(victim, signal.SIGKILL)
    wait_until(lambda: not live_gauge.exists(), timeout=30, what="child_exit to mark the worker dead")
    wait_until(lambda: len(web_workers(process.pid) - {victim}) == 2, timeout=60, what="a new web worker")
    assert get(f"{url}/healthz")[0] == 200


def test_sigterm_stops_the_server_and_its_workers(web_server):
    process, _, _ = web_server
    workers = web_workers(process.pid)
    process.send_signal(signal.SIGTERM)
    assert process.wait(60) == 0
    assert not any(alive(pid) for pid in workers)


def test_web_workers_stop_when_the_master_is_killed_so_a_restart_can_bind_the_port(web_server):
    process, _, _ = web_server
    workers = web_workers(process.pid)
    process.kill()
    process.wait()
    wait_until(lambda: not any(alive(pid) for pid in workers), timeout=30, what="orphaned web workers to stop")
