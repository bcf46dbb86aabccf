"""An outage of the database or Redis answers 503 (JSON under /api/, a plain page elsewhere), never a 500."""

import pytest
from django.db import connection
from django.test import RequestFactory

from edgeportal.errors import server_error


@pytest.fixture
def database_down(transactional_db):
    """The web side's database connection points where no database answers (as during a PostgreSQL restart)."""
    saved = dict(connection.settings_dict)
    connection.close()
    if connection.vendor == "sqlite":
        connection.settings_dict["NAME"] = "/nonexistent-folder/edgeportal.sqlite3"
    else:
        connection.settings_dict.update(HOST="127.0.0.1", PORT="1")
    yield
    connection.close()
    connection.settings_dict.update(saved)


@pytest.fixture
def client(client):
    client.raise_request_exception = False  # answer as the server does, instead of raising into the test
    return client


def test_the_api_answers_503_json_while_the_database_is_down(client, source_token, database_down):
    response = client.post(
        "/api/jobs", data={"prompt": "hello"}, content_type="application/json",
        headers={"Authorization": f"Bearer {source_token}"},
    )  # fmt: skip
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "database_unavailable"
    assert "database is not reachable" in response.json()["error"]["message"]
    assert response["Retry-After"] == "5"


def test_a_page_answers_a_plain_503_page_while_the_database_is_down(manager_client, database_down):
    manager_client.raise_request_exception = False
    response = manager_client.get("/jobs/")  # its session is read from the database
    assert response.status_code == 503
    assert response["Content-Type"].startswith("text/html")
    assert "Unavailable for a moment" in response.content.decode()
    assert "database is not reachable" in response.content.decode()
    assert response["Retry-After"] == "5"


def test_any_other_error_still_gets_the_500_page():
    try:
        raise ValueError("a bug")
    except ValueError:
        response = server_error(RequestFactory().get("/api/jobs"))
    assert response.status_code == 500
    assert "Something went wrong" in response.content.decode()
