"""Anyone logged in, in a real browser: filter the latency history and watch the charts change without a reload."""

import re

import pytest
from playwright.sync_api import expect

from edgeportal.jobs.models import Job
from edgeportal.latency.models import JobLatency

pytestmark = [pytest.mark.integration, pytest.mark.browser]


def _record(status: str, total_ms: float) -> None:
    job = Job.objects.create(prompt="p", max_new_tokens=8, status=status)
    JobLatency.objects.create(job=job, status=status, total_ms=total_ms, worker="w1@edge")


def test_filtering_the_history_swaps_in_new_charts_without_reloading(live_server, page, outsider):
    for total in (40, 60, 80, 120):
        _record("done", total)
    _record("failed", 3000)
    page.goto(f"{live_server.url}/latency/")
    page.fill("#id_username", "otto-outsider")
    page.fill("#id_password", "pw-outsider")
    page.click("main button[type=submit]")

    histogram = page.get_by_test_id("histogram")
    expect(histogram).to_have_attribute("data-total", "5")
    expect(page.get_by_test_id("job-count")).to_have_text("5")
    page.evaluate("window.samePage = true")  # lost if the browser reloads the page

    page.select_option("#id_status", "failed")
    page.click("#latency-filters button[type=submit]")

    expect(page.get_by_test_id("histogram")).to_have_attribute("data-total", "1")
    expect(page.get_by_test_id("job-count")).to_have_text("1")
    expect(page.get_by_test_id("total-p50")).to_have_text("3000.0")
    expect(page).to_have_url(re.compile(r"/latency/\?.*status=failed"))
    assert page.evaluate("window.samePage") is True

    page.fill("#id_batch_size", "0")  # the browser's own min check would stop the submit: bypass it like a script
    page.evaluate("document.querySelector('#id_batch_size').removeAttribute('min')")
    page.click("#latency-filters button[type=submit]")
    expect(page.get_by_test_id("filter-errors")).to_contain_text("Batch size")
    assert page.evaluate("window.samePage") is True
