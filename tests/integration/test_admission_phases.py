"""Admission at the edges of the operating range, with real workers: a cold start, right after an overload,
after a restart, after Redis lost its data."""

import pytest

from edgeportal.core.queueing import get_queue, get_settings_store
from edgeportal.jobs.models import Job
from inference.admission import admission_estimate
from tests.integration.test_pipeline import finished
from tests.integration.workers import wait_until

pytestmark = pytest.mark.integration


def test_a_fresh_worker_has_measured_its_batches_before_the_first_job(start_worker):
    start_worker()
    measured = get_queue().measurements()
    assert measured["base_ms:short"] > 0 and measured["base_tokens:short"] > 0 and measured["base_ms:long"] > 0
    assert "batch_ms:short" not in measured  # nothing ran yet: admission plans with the warm-up alone


def test_from_a_cold_queue_a_burst_is_admitted_only_as_far_as_it_can_finish(api, start_worker):
    start_worker(EDGE_WINDOW_MS="0")
    # A deadline one and a half times what the warm-up plans for the first batch: the first batch of the
    # burst fits, a second does not.
    settings = get_settings_store().current()
    first = admission_estimate(get_queue(), settings, lane="short", priority="normal", deadline_ms=10_000, tokens=8)
    deadline_ms = int(1.5 * first.finish_ms)
    answers = [api.post({"prompt": f"Describe defect {i}.", "deadline_ms": deadline_ms}) for i in range(40)]
    accepted = [a.json()["id"] for a in answers if a.status_code == 202]
    refused = [a for a in answers if a.status_code == 429]
    assert accepted and refused and len(accepted) + len(refused) == 40
    assert {a.json()["error"]["code"] for a in refused} <= {"deadline_unreachable", "queue_full"}
    wait_until(finished(*accepted), what="the accepted jobs")


def overload_left_behind():
    """What an overload leaves in the measurements: batches of 6 s, one of them 14 s (a real overload's
    estimate refused every default-deadline job afterwards)."""
    queue = get_queue()
    for inference_ms in [6_000] * 10 + [14_000] + [6_000] * 2:
        queue.record_batch_time("short", inference_ms, tokens=400, jobs=8)


def test_right_after_an_overload_an_idle_node_takes_a_default_job_and_corrects_its_estimate(api, start_worker):
    start_worker(EDGE_WINDOW_MS="0")
    overload_left_behind()
    queue = get_queue()
    before = queue.measurements()["batch_ms:short"]
    response = api.post({"prompt": "Describe the dent on plate 4."})  # the default deadline, 10 s
    assert response.status_code == 202
    wait_until(finished(response.json()["id"]), what="the probe")
    probe = Job.objects.get(pk=response.json()["id"])
    assert probe.status == Job.Status.DONE
    # Its batch went into the measurements: the estimate moves towards what the node does now.
    expected = before + (probe.batch.inference_ms - before) * 0.2
    assert queue.measurements()["batch_ms:short"] == pytest.approx(expected, abs=0.1)


def test_after_a_restart_and_after_redis_lost_its_data_the_worker_puts_its_measurement_back(api, start_worker):
    worker = start_worker()
    queue = get_queue()
    baseline = {name: value for name, value in queue.measurements().items() if name.startswith("base_")}
    worker.stop()
    overload_left_behind()
    start_worker()  # a restart measures again and replaces the old baseline
    assert {name for name in queue.measurements() if name.startswith("base_")} == set(baseline)
    queue.redis.delete(queue.stats)  # Redis restarted without its data
    wait_until(lambda: "base_ms:short" in queue.measurements(), timeout=10, what="the baseline to come back")
    assert api.post({"prompt": "Describe the scratch on plate 5."}).status_code == 202
