"""/readyz against a real worker process."""

import pytest

from tests.integration.workers import wait_until

pytestmark = pytest.mark.integration


def test_readyz_is_ready_with_a_real_worker_and_names_it_gone_once_it_stops(client, start_worker):
    assert client.get("/readyz").json()["failing"] == ["worker"]
    worker = start_worker("w-ready")
    response = client.get("/readyz")
    assert response.status_code == 200, response.json()
    assert response.json()["checks"]["worker"]["live"] == 1
    worker.stop()
    wait_until(lambda: client.get("/readyz").status_code == 503, timeout=60, what="readyz to see the worker gone")
    assert client.get("/readyz").json()["failing"] == ["worker"]
