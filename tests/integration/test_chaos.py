"""Faults with real processes, the fast cases of `make chaos` (bench/chaos.py runs them all, long, on private
services): Redis losing this installation's keys, a database lock while a batch is stored, the web server
killed mid-submit. They never restart or flush the shared Redis or database: a flush deletes this test's keys.

The two-worker kill is in test_pipeline.py (a worker's jobs taken over once its heartbeat stops).
"""

import contextlib
import http.client
import json
import os
import signal
import sqlite3
import subprocess
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import psycopg
import pytest
from django.conf import settings
from django.db import connection

from edgeportal.jobs.models import Job
from edgeportal.jobs.services import jobs_requeue_lost
from edgeportal.latency.models import BatchRecord, JobLatency
from edgeportal.serving import web_command
from tests.conftest import make_template
from tests.integration import workers
from tests.integration.test_pipeline import runs_of
from tests.integration.test_serving import free_port, web_workers
from tests.integration.workers import ROOT, wait_until

pytestmark = pytest.mark.integration


def final(*job_ids):
    return lambda: Job.objects.filter(pk__in=job_ids, status__in=Job.FINISHED).count() == len(job_ids)


def redis_holds_no_job(queue) -> bool:
    return (
        not queue.live_job_ids()
        and not queue.redis.zcard(queue.deadlines)
        and not queue.redis.keys(f"{queue.job_prefix}*")
    )


def stored_once(job_ids) -> None:
    """Each job has one latency record with its own status, and each batch record is some job's batch (a batch
    run again after a fault stores nothing for jobs already stored)."""
    jobs = Job.objects.filter(pk__in=job_ids)
    assert JobLatency.objects.filter(job__in=jobs).count() == len(job_ids)
    assert all(job.latency.status == job.status for job in jobs)
    assert not BatchRecord.objects.filter(jobs__isnull=True).exists()


def slow_template(max_new_tokens=300):
    """A template whose jobs keep the tiny model busy for about a second a batch."""
    make_template(slug="report", title="Report", body="Write a report on {topic}.", max_new_tokens=max_new_tokens)
    return lambda api, topic, deadline_ms=120_000: api.post(
        {"template": "report", "variables": {"topic": topic}, "deadline_ms": deadline_ms}
    ).json()["id"]


def test_jobs_lost_with_redis_keys_finish_once_after_the_sweep(api, start_worker, queue):
    submit = slow_template()
    worker = start_worker("w1", EDGE_WINDOW_MS="50", EDGE_MAX_BATCH_SIZE="2")
    ids = [submit(api, f"line {i}") for i in range(6)]  # three batches: one runs, two wait
    wait_until(lambda: Job.objects.filter(pk__in=ids, status=Job.Status.RUNNING).exists(), what="a batch running")

    # Redis restarted without persistence, for this installation: lanes, leases, stats, heartbeats, all gone.
    queue.redis.delete(*queue.redis.scan_iter(f"{settings.EDGE_REDIS_PREFIX}:*"))
    assert queue.live_job_ids() == set()
    assert jobs_requeue_lost(grace_s=0) >= 4  # the beat task's sweep: what the database knows goes back

    wait_until(final(*ids), timeout=120, what="every job to finish")
    assert set(Job.objects.filter(pk__in=ids).values_list("status", flat=True)) == {Job.Status.DONE}
    stored_once(ids)
    assert all(runs_of(job_id, worker) >= 1 for job_id in ids)
    assert redis_holds_no_job(queue)
    # The worker put back what it publishes: its heartbeat and its warm-up batch times.
    wait_until(lambda: queue.redis.exists(queue.worker_key("w1@test")), timeout=30, what="a heartbeat")
    assert "base_ms:short" in queue.redis.hgetall(queue.stats)


@contextlib.contextmanager
def jobs_table_locked():
    """Another session holds a write lock on the jobs (SQLite: the whole database) until the block ends."""
    db = connection.settings_dict
    if connection.vendor == "sqlite":
        other = sqlite3.connect(db["NAME"], isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
        try:
            yield
        finally:
            other.execute("ROLLBACK")
            other.close()
        return
    with psycopg.connect(workers.test_database_url().replace("postgres://", "postgresql://", 1)) as other:
        other.execute("LOCK TABLE jobs_job IN EXCLUSIVE MODE")
        try:
            yield
        finally:
            other.rollback()


def test_outputs_wait_out_a_database_lock_and_are_stored_without_running_the_model_again(api, start_worker):
    submit = slow_template()
    worker = start_worker("w1", EDGE_WINDOW_MS="50")
    job_id = submit(api, "the press line")
    wait_until(lambda: Job.objects.get(pk=job_id).status == Job.Status.RUNNING, what="the batch to run")
    with jobs_table_locked():
        wait_until(lambda: runs_of(job_id, worker) == 1, timeout=60, what="the model to finish")
        time.sleep(2)  # the worker is storing now, and waits for the lock
        released_at = time.time()
    wait_until(final(job_id), timeout=60, what="the outputs to be stored")
    job = Job.objects.get(pk=job_id)
    assert job.status == Job.Status.DONE and job.output_tokens > 0
    assert job.inference_ended_at.timestamp() < released_at <= job.finished_at.timestamp()
    assert runs_of(job_id, worker) == 1  # the model ran once
    stored_once([job_id])


class WebServer:
    """make run's production web server (gunicorn, uvicorn workers) on the test database and Redis prefix."""

    def __init__(self, tmp_path: Path, model_path: Path):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = tmp_path / "web.log"
        self.env = {
            **os.environ,
            "DATABASE_URL": workers.test_database_url(),
            "REDIS_URL": settings.REDIS_URL,
            "EDGE_REDIS_PREFIX": settings.EDGE_REDIS_PREFIX,
            "EDGE_MODEL": str(model_path),
            "EDGE_DEVICE": "cpu",
            "ALLOWED_HOSTS": "127.0.0.1",
            "SECRET_KEY": "test-only",
            "EDGE_RATE_LIMIT_PER_MINUTE": "0",
        }
        self.process: subprocess.Popen | None = None

    def start(self) -> "WebServer":
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                web_command(host="127.0.0.1", port=self.port), cwd=ROOT, env=self.env, stdout=log,
                stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        try:
            wait_until(self.answers, timeout=90, what="the web server to answer")
        except TimeoutError:
            raise AssertionError(self.log_path.read_text()[-3000:]) from None
        wait_until(lambda: len(web_workers(self.process.pid)) == 2, timeout=30, what="two web workers")
        return self

    def answers(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/healthz", timeout=5) as response:
                return response.status == 200
        except OSError:
            return False

    def kill(self) -> None:
        """kill -9 of the server and its workers at once."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(30)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.kill()


@pytest.fixture
def web_server(transactional_db, tmp_path, tiny_model_path):
    server = WebServer(tmp_path, tiny_model_path)
    yield server
    server.stop()


def post_job(url: str, token: str, n: int) -> tuple[int, int | None]:
    """One submission as a machine sends it: the HTTP status (0: no answer) and the job id of a 202."""
    request = urllib.request.Request(
        f"{url}/api/jobs", data=json.dumps({"prompt": f"Inspect weld seam {n}.", "deadline_ms": 60_000}).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"}, method="POST",
    )  # fmt: skip
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())["id"]
    except urllib.error.HTTPError as error:
        return error.code, None
    except (OSError, http.client.HTTPException):  # refused or cut off: the server was killed
        return 0, None


def test_jobs_of_a_web_server_killed_mid_submit_each_end_once(web_server, source_token, start_worker, queue):
    start_worker("w1", EDGE_WINDOW_MS="50")
    web_server.start()
    answers: list[tuple[int, int | None]] = []
    in_flight = []
    sending = threading.Event()
    sending.set()

    def send(sender: int) -> None:
        n = sender * 1000
        while sending.is_set():
            in_flight.append(n)
            answers.append(post_job(web_server.url, source_token, n))
            in_flight.remove(n)
            n += 1
            time.sleep(0.05)

    senders = [threading.Thread(target=send, args=(i,), daemon=True) for i in range(4)]
    for sender in senders:
        sender.start()
    wait_until(lambda: len(answers) >= 30, timeout=60, what="submissions")
    wait_until(lambda: len(in_flight) >= 2, timeout=30, interval=0.001, what="submissions in flight")
    web_server.kill()  # submissions in flight, each at some step of the entry
    killed_at = len(answers)
    time.sleep(1)
    web_server.start()  # as make run's supervisor does, a second later
    wait_until(lambda: sum(status == 202 for status, _ in answers[killed_at:]) >= 20, timeout=60, what="202s again")
    sending.clear()
    for sender in senders:
        sender.join(60)

    # A job committed by the killed server before it queued the job on Redis is queued by the sweep.
    jobs_requeue_lost(grace_s=0)
    ids = list(Job.objects.values_list("pk", flat=True))
    wait_until(final(*ids), timeout=120, what="every stored job to finish")
    accepted = [job_id for status, job_id in answers if status == 202]
    assert set(accepted) <= set(ids)
    assert set(Job.objects.filter(pk__in=accepted).values_list("status", flat=True)) == {Job.Status.DONE}
    stored_once(ids)
    assert redis_holds_no_job(queue)
    assert {status for status, _ in answers} <= {202, 429, 0}  # answered, or cut off by the kill: never a 5xx
    assert any(status == 0 for status, _ in answers)  # the kill did land mid-submit
