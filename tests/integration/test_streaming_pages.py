"""The job page in a real browser, served by the production web server: the output appears piece by piece as
the worker publishes it (escaped: model output is untrusted), and the finished job replaces it."""

import pytest
from django.conf import settings
from playwright.sync_api import expect

from edgeportal.core.queueing import get_queue
from edgeportal.jobs.models import Job
from edgeportal.jobs.services import jobs_ended
from inference.store.job_events import JobEvents, TextEvent

pytestmark = [pytest.mark.integration, pytest.mark.browser]


def test_the_job_page_appends_the_output_as_it_streams_then_shows_the_finished_job(start_web, page, manager):
    web = start_web()
    job = Job.objects.create(
        prompt="Write a notice.", max_new_tokens=8, submitted_by=manager, decoding={"stream": True}
    )
    page.goto(f"{web.url}/login/?next=/jobs/{job.pk}/")
    page.fill("#id_username", "mia-manager")
    page.fill("#id_password", "pw-manager")
    page.click("main button[type=submit]")
    expect(page.get_by_test_id("job-status")).to_have_text("queued")
    page.evaluate("window.samePage = true")

    events = JobEvents(get_queue().redis, settings.EDGE_REDIS_PREFIX)
    events.publish_text({job.pk: TextEvent("Line A <b>stops</b>", 0, 3)})
    expect(page.get_by_test_id("job-output-live")).to_have_text("Line A <b>stops</b>")  # as text, not markup
    expect(page.get_by_test_id("job-status")).to_have_text("running")
    events.publish_text({job.pk: TextEvent(" at ten.", len("Line A <b>stops</b>"), 5)})
    expect(page.get_by_test_id("job-output-live")).to_have_text("Line A <b>stops</b> at ten.")

    Job.objects.filter(pk=job.pk).update(status=Job.Status.DONE, output="Line A stops at ten.", output_tokens=5)
    jobs_ended([Job.objects.get(pk=job.pk)])
    expect(page.get_by_test_id("job-status")).to_have_text("done")
    expect(page.get_by_test_id("job-output")).to_have_text("Line A stops at ten.")
    assert page.evaluate("window.samePage") is True
