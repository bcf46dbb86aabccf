"""A manager in a real browser: log in, submit from the form, watch the status turn done without a reload."""

import re

import pytest
from playwright.sync_api import expect

pytestmark = [pytest.mark.integration, pytest.mark.browser]


def test_a_manager_submits_a_job_and_sees_it_done_without_reloading(live_server, page, manager, start_worker):
    start_worker(EDGE_WINDOW_MS="60")
    page.goto(f"{live_server.url}/jobs/new/")
    page.fill("#id_username", "mia-manager")
    page.fill("#id_password", "pw-manager")
    page.click("button[type=submit]")

    page.fill("#id_prompt", "Write a notice: line A restarts in 10 minutes.")
    page.click("#submit-form button[type=submit]")
    expect(page).to_have_url(re.compile(r"/jobs/\d+/$"))
    page.evaluate("window.samePage = true")  # lost if the browser reloads the page

    expect(page.get_by_test_id("job-status")).to_have_text("done", timeout=30_000)
    assert page.evaluate("window.samePage") is True
    expect(page.get_by_test_id("job-output")).to_be_attached()  # the tiny random model may say nothing readable
    expect(page.get_by_test_id("job-tokens")).to_contain_text(" out")
