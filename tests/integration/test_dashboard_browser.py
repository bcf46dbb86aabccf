"""Anyone logged in watches the live dashboard follow the queue in a real browser, without a reload."""

import pytest
from playwright.sync_api import expect

from inference.store.queue import QueuedJob

pytestmark = [pytest.mark.integration, pytest.mark.browser]


def test_the_dashboard_follows_the_queue_depth_without_reloading(live_server, page, outsider, queue):
    page.goto(f"{live_server.url}/dashboard/")
    page.fill("#id_username", "otto-outsider")
    page.fill("#id_password", "pw-outsider")
    page.click("main button[type=submit]")
    expect(page.get_by_test_id("depth-short")).to_have_text("0")
    page.evaluate("window.samePage = true")  # lost if the browser reloads the page

    for job_id in (101, 102):
        queue.enqueue(QueuedJob(job_id=job_id, prompt="waiting", max_new_tokens=8), deadline_in_ms=60_000)
    expect(page.get_by_test_id("depth-short")).to_have_text("2", timeout=10_000)  # polled every 3 s
    assert page.evaluate("window.samePage") is True
