import pytest
from playwright.sync_api import sync_playwright

from tests.integration.workers import BeatProcess, ExitsWorkerProcess, ReceiverProcess, WebServer, WorkerProcess


@pytest.fixture
def start_worker(transactional_db, tiny_model_path, tmp_path):
    """Start real worker processes; all are stopped at the end of the test."""
    started = []

    def start(name="w1", **env):
        worker = WorkerProcess(name, model_path=tiny_model_path, log_dir=tmp_path, **env).start()
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop()


@pytest.fixture
def start_exits_worker(transactional_db, tmp_path):
    """Start real exits workers (deliveries only); all are stopped at the end of the test."""
    started = []

    def start(name="exits1", **env):
        worker = ExitsWorkerProcess(name, log_dir=tmp_path, **env).start()
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop()
        worker.forget_its_messages()


@pytest.fixture
def start_receiver(tmp_path):
    """Start a webhook receiver process (tests/integration/receiver.py); stopped at the end of the test."""
    started = []

    def start(**options):
        receiver = ReceiverProcess(log_dir=tmp_path, **options).start()
        started.append(receiver)
        return receiver

    yield start
    for receiver in started:
        receiver.stop()


@pytest.fixture
def start_web(transactional_db, tiny_model_path, tmp_path):
    """Start the production web server (gunicorn, uvicorn workers) on the test database; stopped at the end."""
    started = []

    def start(**env):
        server = WebServer(model_path=tiny_model_path, log_dir=tmp_path, **env).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def start_beat(transactional_db, tmp_path):
    """Start a real beat process on its own; it is stopped at the end of the test."""
    started = []

    def start(**env):
        beat = BeatProcess(log_dir=tmp_path, **env).start()
        started.append(beat)
        return beat

    yield start
    for beat in started:
        beat.stop()


CHROMIUM = "/usr/bin/chromium"
# Flags for a closed network and root: no background calls home, no sandbox.
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync",
]  # fmt: skip


@pytest.fixture
def page(monkeypatch):
    # Playwright's sync API runs an event loop in this thread; Django's ORM guard would refuse the test's queries.
    # monkeypatch takes it back even when Chromium fails to start: later tests' subprocesses must not inherit it.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser.new_page()
        browser.close()
