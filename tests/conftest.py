"""Shared fixtures: the tiny model, an isolated Redis key prefix per test, named users and a source."""

import json
import os
import shutil
import tempfile
import uuid
from datetime import timedelta
from pathlib import Path

# Before anything imports prometheus_client (edgeportal.jobs.services does): this run and the worker processes
# it starts share a fresh, empty metrics folder of their own, whatever the environment says.
os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="edgeportal-metrics-")

import pytest
import redis
from django.contrib.auth.models import User
from django.utils import timezone, translation

from edgeportal.accounts.services import roles_ensure
from edgeportal.core.queueing import get_queue
from edgeportal.jobs.refusals import refusals_by_rule
from edgeportal.jobs.sink import DatabaseSink
from edgeportal.prompts.models import PromptTemplate
from edgeportal.prompts.services import template_save
from edgeportal.sources.services import source_create
from inference.runtime import load_engine
from inference.settings import SchedulerSettings
from inference.store.queue import SettingsStore
from inference.worker import BatchWorker
from tests.tiny_model import tiny_model_dir


def pytest_configure(config):
    # The SQLite test database and the tiny model live in .cache/, absent from a fresh clone.
    cache = Path(__file__).resolve().parent.parent / ".cache"
    cache.mkdir(exist_ok=True)
    # The database runs in WAL mode: a log left by a killed run must not be replayed into the new test database.
    for leftover in ("test-db.sqlite3-wal", "test-db.sqlite3-shm"):
        (cache / leftover).unlink(missing_ok=True)


def pytest_unconfigure(config):
    shutil.rmtree(os.environ["PROMETHEUS_MULTIPROC_DIR"], ignore_errors=True)


@pytest.fixture(scope="session")
def tiny_model_path():
    return tiny_model_dir()


@pytest.fixture(scope="session")
def tiny_model(tiny_model_path):
    return load_engine(str(tiny_model_path), device="cpu")


@pytest.fixture(autouse=True)
def redis_prefix(settings):
    """Every test gets its own Redis keys, deleted afterwards, so tests never see each other's jobs."""
    prefix = f"edgeportal-test:{uuid.uuid4().hex[:10]}"
    settings.EDGE_REDIS_PREFIX = prefix
    url = settings.REDIS_URL
    yield prefix
    client = redis.Redis.from_url(url)
    keys = list(client.scan_iter(f"{prefix}:*"))
    if keys:
        client.delete(*keys)


@pytest.fixture(autouse=True)
def _language_reset():
    """A page request leaves its language active in the thread (LocaleMiddleware never deactivates it, and
    every request activates its own): code a later test calls outside a request speaks the default again."""
    yield
    translation.deactivate()


@pytest.fixture(autouse=True)
def web_model(settings, tiny_model_path):
    """The web side counts tokens with the tiny model's tokenizer (SmolLM2's real one), as a node with a prepared
    model does: lanes and token limits in tests follow real token counts, never the four-characters fallback,
    and the model's size gives admission's prior."""
    settings.EDGE_MODEL = str(tiny_model_path)


@pytest.fixture
def queue(redis_prefix):
    return get_queue()


@pytest.fixture
def redis_round_trips(monkeypatch) -> list[bytes]:
    """What this process sends to Redis from now on, one entry per round trip (a pipeline sends all its
    commands at once)."""
    sent = []
    send = redis.connection.AbstractConnection.send_packed_command
    monkeypatch.setattr(
        redis.connection.AbstractConnection, "send_packed_command",
        lambda self, command, *args, **kwargs: sent.append(command) or send(self, command, *args, **kwargs),
    )  # fmt: skip
    return sent


@pytest.fixture
def manager(db):
    managers, _ = roles_ensure()
    user = User.objects.create_user("mia-manager", password="pw-manager")
    user.groups.add(managers)
    return user


@pytest.fixture
def admin_user(db):
    _, admins = roles_ensure()
    user = User.objects.create_user("ada-admin", password="pw-admin", is_staff=True, is_superuser=True)
    user.groups.add(admins)
    return user


@pytest.fixture
def outsider(db):
    return User.objects.create_user("otto-outsider", password="pw-outsider")


@pytest.fixture
def manager_client(client, manager):
    client.force_login(manager)
    return client


@pytest.fixture
def source_token(db):
    _, token = source_create(name="camera-c3", kind="camera")
    return token


@pytest.fixture
def api(client, source_token):
    """The test client speaking JSON with the camera's bearer token."""

    class Api:
        def post(self, body, token=source_token, raw=None):
            data = raw if raw is not None else json.dumps(body)
            return client.post(
                "/api/jobs", data=data, content_type="application/json", headers={"Authorization": f"Bearer {token}"}
            )

        def get(self, job_id, token=source_token):
            return self.get_path(f"/api/jobs/{job_id}", token)

        def get_path(self, path, token=source_token):
            return client.get(path, headers={"Authorization": f"Bearer {token}"})

    return Api()


@pytest.fixture
def defect_template(db):
    return make_template(
        slug="defect", title="Defect description", body="Camera {camera} detected {defect}. Describe it for QA.",
        max_new_tokens=8,
    )  # fmt: skip


def recent_refusals() -> dict[str, int]:
    """Refusals per rule in the last two minutes, as the dashboard counts them (Redis, then the database)."""
    return dict(refusals_by_rule(since=timezone.now() - timedelta(minutes=2)))


@pytest.fixture
def notice_template(db):
    """A template with a choice, an integer (1 to 60) and a text variable."""
    return make_template(
        slug="notice",
        title="Notice",
        body="Line {line} restarts in {minutes} minutes. Write a notice in {language}.",
        variables=[
            {"name": "line", "type": "choice", "choices": ["A", "B"]},
            {"name": "minutes", "type": "integer", "min": 1, "max": 60},
            {"name": "language", "max_length": 10},
        ],
    )


def make_template(**fields) -> PromptTemplate:
    """A template saved the way admins save them: through the service that records its first version."""
    template = PromptTemplate(**fields)
    template_save(template=template)
    return template


@pytest.fixture
def redis_down(settings):
    """Point the web side at a port where no Redis listens."""
    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    return settings


@pytest.fixture
def make_worker(tiny_model, queue):
    """A BatchWorker in this process (tests call its steps), with the tiny model and the database sink."""

    def make_worker(model=tiny_model, name="w-test", **kwargs):
        settings = SettingsStore(queue, SchedulerSettings(window_ms=30, max_batch_size=4))
        return BatchWorker(model=model, queue=queue, sink=DatabaseSink(), settings=settings, name=name, **kwargs)

    return make_worker
