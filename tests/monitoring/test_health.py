"""/healthz (the web process answers) and /readyz (database, Redis and a live worker with its model)."""

import time

import pytest
from django.db import OperationalError

from edgeportal.monitoring import selectors
from inference.store.queue import WORKER_ALIVE_S


@pytest.fixture(autouse=True)
def _db(db):
    pass


def test_healthz_answers_without_login_database_or_redis(client, redis_down, django_assert_num_queries):
    with django_assert_num_queries(0):
        response = client.get("/healthz")
    assert response.status_code == 200 and response.json() == {"status": "ok"}
    assert client.head("/healthz").status_code == 200


def test_readyz_names_the_worker_when_none_runs(client):
    response = client.get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable" and body["failing"] == ["worker"]
    assert body["checks"]["database"] == {"ok": True} and body["checks"]["redis"] == {"ok": True}
    assert "no worker with its model loaded" in body["checks"]["worker"]["error"]


def test_readyz_names_redis_when_it_is_down(client, redis_down):
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["failing"] == ["redis", "worker"]
    assert response.json()["checks"]["redis"] == {"ok": False, "error": "does not answer"}


def test_readyz_names_the_database_when_it_does_not_answer(client, monkeypatch):
    class Unreachable:
        def cursor(self):
            raise OperationalError("connection refused")

    monkeypatch.setattr(selectors, "connection", Unreachable())
    response = client.get("/readyz")
    assert response.status_code == 503 and "database" in response.json()["failing"]
    assert "refused" not in response.content.decode()  # no error details for whoever asks


def test_readyz_is_ready_with_a_worker_heartbeat_and_not_once_it_is_older_than_the_dashboards_limit(
    client, make_worker, queue
):
    worker = make_worker(name="w-ready")
    worker.heartbeat()
    response = client.get("/readyz")
    assert response.status_code == 200, response.json()
    assert response.json() == {
        "status": "ready",
        "failing": [],
        "checks": {"database": {"ok": True}, "redis": {"ok": True}, "worker": {"ok": True, "live": 1}},
    }
    stale = time.time() - WORKER_ALIVE_S - 1
    queue.redis.hset(queue.worker_key("w-ready"), "heartbeat_at", stale)
    assert client.get("/readyz").json()["failing"] == ["worker"]
