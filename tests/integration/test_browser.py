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
    page.click("main button[type=submit]")

    page.fill("#id_prompt", "Write a notice: line A restarts in 10 minutes.")
    page.click("#submit-form button[type=submit]")
    expect(page).to_have_url(re.compile(r"/jobs/\d+/$"))
    page.evaluate("window.samePage = true")  # lost if the browser reloads the page

    expect(page.get_by_test_id("job-status")).to_have_text("done", timeout=30_000)
    assert page.evaluate("window.samePage") is True
    expect(page.get_by_test_id("job-output")).to_be_attached()  # the tiny random model may say nothing readable
    expect(page.get_by_test_id("job-tokens")).to_contain_text(" out")


def test_a_manager_switches_the_pages_to_chinese_and_reads_the_plants_local_time(start_web, page, manager):
    from edgeportal.jobs.models import Job

    job = Job.objects.create(prompt="Write a notice.", max_new_tokens=8, submitted_by=manager)
    web = start_web(EDGE_TIME_ZONE="Asia/Shanghai")
    page.goto(f"{web.url}/login/?next=/jobs/")
    page.select_option("#language-select", "zh-hans")  # submits itself (JavaScript runs here)
    expect(page.get_by_role("heading", level=1)).to_have_text("登录")
    page.fill("#id_username", "mia-manager")
    page.fill("#id_password", "pw-manager")
    page.click("main button[type=submit]")
    expect(page.get_by_role("link", name="提交任务")).to_be_visible()
    expect(page.get_by_test_id("plant-zone")).to_have_text("Asia/Shanghai")
    stamp = page.locator("#job-rows time").first
    expect(stamp).to_contain_text(" CST")
    assert stamp.get_attribute("datetime").endswith("+08:00")
    page.goto(f"{web.url}/jobs/{job.pk}/")  # the choice is remembered
    expect(page.get_by_test_id("job-status")).to_have_text("排队中")
