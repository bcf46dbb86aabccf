"""The Grafana dashboard in docs/ asks only for metrics that /metrics really exports."""

import json
import re
from pathlib import Path
from types import SimpleNamespace

import pytest

from edgeportal.core import metrics
from edgeportal.jobs.entry import JobRejected, job_submit
from edgeportal.jobs.services import jobs_fail
from tests.monitoring.scrape import scrape

DASHBOARD = Path(__file__).resolve().parents[2] / "docs" / "grafana" / "edgeportal.json"
pytestmark = pytest.mark.django_db(transaction=True)


def expressions(dashboard: dict) -> list[str]:
    return [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]


def test_every_panel_reads_the_prometheus_datasource_chosen_at_import():
    dashboard = json.loads(DASHBOARD.read_text())
    assert [i["name"] for i in dashboard["__inputs"]] == ["DS_PROMETHEUS"]
    for panel in dashboard["panels"]:
        assert panel["datasource"]["uid"] == "${DS_PROMETHEUS}", panel["title"]
        assert all(target["datasource"]["uid"] == "${DS_PROMETHEUS}" for target in panel["targets"])


def test_every_series_the_dashboard_queries_is_exported(client, make_worker):
    # Labelled series appear at their first observation: run a batch, fail a job, refuse a request, finish an
    # output of a template and try to deliver it.
    job_submit(prompt="A job that runs.", allow_free_prompt=True)
    make_worker().batch_step()
    job = job_submit(prompt="A job that fails.", allow_free_prompt=True)
    jobs_fail(job_ids=[job.pk], reason="x")
    with pytest.raises(JobRejected):
        job_submit(prompt="", allow_free_prompt=True)
    metrics.outputs_finished([SimpleNamespace(name="ticket", status="done")])
    metrics.delivery_attempted("delivered")
    exported = scrape(client).names()

    queried = {
        name for expr in expressions(json.loads(DASHBOARD.read_text())) for name in re.findall(r"edgeportal_\w+", expr)
    }
    assert queried - exported == set()
    assert {"edgeportal_request_duration_seconds_bucket", "edgeportal_batch_size_bucket"} <= queried
    assert {"edgeportal_outputs_total", "edgeportal_delivery_dead_letters_total"} <= queried
