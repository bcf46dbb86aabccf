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


def _tab_to(page, selector: str, *, limit: int = 40) -> None:
    """Press Tab until the element matching selector has the focus (keyboard only, as a person would)."""
    for _ in range(limit):
        if page.evaluate(f"document.activeElement.matches({selector!r})"):
            return
        page.keyboard.press("Tab")
    raise AssertionError(f"Tab never reached {selector}")


def test_a_manager_picks_a_template_card_fills_it_and_submits_with_the_keyboard_alone(live_server, page, manager):
    from tests.conftest import make_template

    make_template(
        slug="stop", title="Line stop notice", description="Tell the line a stop is coming.",
        body="Line {line} stops for {minutes} minutes.",
        variables=[{"name": "line", "type": "choice", "choices": ["A", "B"]},
                   {"name": "minutes", "type": "integer", "min": 1, "max": 60}],
    )  # fmt: skip
    page.goto(f"{live_server.url}/jobs/new/")
    page.fill("#id_username", "mia-manager")
    page.fill("#id_password", "pw-manager")
    page.keyboard.press("Enter")
    expect(page.get_by_test_id("template-cards")).to_be_visible()
    _tab_to(page, "input[name=template]")
    # htmx listens on the new form only once it has settled: keys typed before that would start no preview.
    page.evaluate("window.formSettled = false; document.body.addEventListener('htmx:afterSettle', "
                  "() => { window.formSettled = true }, {once: true})")  # fmt: skip
    page.keyboard.press("ArrowUp")  # from the free prompt (checked) to the template's card: its form comes in
    page.wait_for_function("window.formSettled")
    expect(page.locator("#id_var_line")).to_be_visible()
    _tab_to(page, "#id_var_line")
    page.keyboard.press("ArrowDown")
    page.keyboard.press("ArrowDown")
    _tab_to(page, "#id_var_minutes")
    page.keyboard.type("15")
    expect(page.get_by_test_id("preview-prompt")).to_have_text("Line B stops for 15 minutes.")
    expect(page.get_by_test_id("preview-tokens")).to_contain_text("token")
    _tab_to(page, "input[name=priority]")  # the checked one, normal
    page.keyboard.press("ArrowUp")
    _tab_to(page, "#submit-form button[type=submit]")
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(r"/jobs/\d+/$"))
    expect(page.get_by_test_id("job-scheduling")).to_contain_text("high")


def test_a_manager_types_a_free_prompt_and_switches_to_the_template_it_suggests(live_server, page, manager):
    from tests.conftest import make_template

    make_template(
        slug="defect-qa", title="Defect description for QA", description="A camera found a defect: describe it.",
        body="Camera {camera} detected {defect}. Write a short defect description for QA.",
    )  # fmt: skip
    page.goto(f"{live_server.url}/jobs/new/")
    page.fill("#id_username", "mia-manager")
    page.fill("#id_password", "pw-manager")
    page.click("main button[type=submit]")
    page.wait_for_load_state()  # htmx has set up the prompt's listeners
    page.locator("#id_prompt").press_sequentially("Camera C7 saw a dent on the door panel, describe the defect for QA")
    suggestion = page.get_by_test_id("route-suggestion")
    expect(suggestion).to_contain_text("This looks like Defect description for QA.")
    page.evaluate("window.samePage = true")  # lost if the link reloads the page instead
    suggestion.get_by_role("link").click()  # picks the template's card, as a click on it would
    expect(page.locator("#id_var_camera")).to_be_visible()
    assert page.evaluate("window.samePage") is True
    expect(page.locator(".picker input[value=defect-qa]")).to_be_checked()
    expect(page).to_have_url(re.compile(r"/jobs/new/\?template=defect-qa$"))
