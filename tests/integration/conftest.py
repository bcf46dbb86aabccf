import pytest

from tests.integration.workers import WorkerProcess


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
