"""axe-core in a real browser on the main pages, in English and in Chinese: no serious or critical violation.
axe-core comes from the npm registry (scripts/ensure-axe.sh, pinned) and is injected from that file."""

import glob
import os
from pathlib import Path

import pytest
from playwright.sync_api import expect

from edgeportal.jobs.models import Job
from edgeportal.latency.models import JobLatency
from tests.conftest import make_template

pytestmark = [pytest.mark.integration, pytest.mark.browser]

ROOT = Path(__file__).resolve().parents[2]
AXE = sorted(glob.glob(str(ROOT / ".cache" / "axe-core-*" / "axe.min.js")))
PAGES = {
    "submit": "/jobs/new/?template=stop", "job": "/jobs/{job}/", "history": "/latency/", "dashboard": "/dashboard/",
    "templates": "/templates/", "tuning": "/tuning/", "jobs": "/jobs/",
}  # fmt: skip
# `make screenshots` sets this: the README's pictures of each page, in each language, come from this test.
SCREENSHOTS = os.environ.get("EDGE_SCREENSHOTS")


def screenshot(page, language: str, name: str) -> None:
    if SCREENSHOTS:
        page.wait_for_timeout(300)  # htmx's first swaps
        page.screenshot(path=str(ROOT / "docs" / "screenshots" / language / f"{name}.jpg"), type="jpeg", quality=70)


def violations(page) -> list[str]:
    page.add_script_tag(path=AXE[-1])
    found = page.evaluate("async () => (await axe.run(document, {resultTypes: ['violations']})).violations")
    return [
        f"{v['id']} ({v['impact']}): {[node['target'] for node in v['nodes']][:3]}"
        for v in found
        if v["impact"] in ("serious", "critical")
    ]


@pytest.mark.skipif(not AXE, reason="axe-core is not installed (scripts/ensure-axe.sh needs npm)")
@pytest.mark.parametrize("language", ["en", "zh-hans"])
def test_the_main_pages_have_no_serious_accessibility_violations(live_server, page, admin_user, language):
    make_template(
        slug="stop", title="Line stop notice", description="Tell the line a stop is coming.",
        body="Line {line} stops for {minutes} minutes.",
        variables=[{"name": "line", "type": "choice", "choices": ["A", "B"]},
                   {"name": "minutes", "type": "integer", "min": 1, "max": 60}],
    )  # fmt: skip
    job = Job.objects.create(prompt="Write a notice.", max_new_tokens=8, status="done", output="Line A stops.")
    JobLatency.objects.create(job=job, status="done", total_ms=640.0, queue_wait_ms=20, inference_ms=600)
    page.context.add_cookies([{"name": "django_language", "value": language, "url": live_server.url}])

    page.goto(f"{live_server.url}/login/")
    expect(page.locator("html")).to_have_attribute("lang", language)
    screenshot(page, language, "login")
    problems = {"/login/": violations(page)}
    page.fill("#id_username", "ada-admin")
    page.fill("#id_password", "pw-admin")
    page.click("main button[type=submit]")
    expect(page.get_by_test_id("plant-zone")).to_be_visible()
    for name, path in PAGES.items():
        page.goto(live_server.url + path.format(job=job.pk))
        screenshot(page, language, name)
        problems[path] = violations(page)
    assert {path: found for path, found in problems.items() if found} == {}


@pytest.mark.skipif(not AXE, reason="axe-core is not installed (scripts/ensure-axe.sh needs npm)")
def test_the_check_finds_a_control_without_a_name(live_server, page, db):
    page.goto(f"{live_server.url}/login/")
    page.evaluate("document.querySelector('main').insertAdjacentHTML('beforeend', '<button></button>')")
    assert any(found.startswith("button-name (critical)") for found in violations(page))
