"""The pages' job stream in process: who may read it, and what it sends."""

import re

import pytest
from asgiref.sync import async_to_sync
from django.conf import settings
from django.test import AsyncClient

from edgeportal.core.queueing import get_queue
from edgeportal.jobs.models import Job
from edgeportal.jobs.services import jobs_ended
from inference.store.job_events import JobEvents, TextEvent


def stream(path, user=None):
    async def go():
        client = AsyncClient()
        if user is not None:
            await client.aforce_login(user)
        response = await client.get(path)
        if not response.streaming:
            return response.status_code, response.content.decode()
        return response.status_code, b"".join([part async for part in response.streaming_content]).decode()

    return async_to_sync(go)()


@pytest.mark.django_db(transaction=True)
def test_a_stream_sends_escaped_text_then_the_end(manager):
    job = Job.objects.create(prompt="p", max_new_tokens=8, decoding={"stream": True})
    events = JobEvents(get_queue().redis, settings.EDGE_REDIS_PREFIX)
    events.publish_text({job.pk: TextEvent("<script>alert(1)</script>\nnext line", 0, 4)})
    jobs_ended([job])  # its end is published (the page reads the finished job itself afterwards)
    status, body = stream(f"/stream/jobs/{job.pk}", manager)
    assert status == 200
    assert re.search(
        r"event: text\nid: [\d-]+\ndata: &lt;script&gt;alert\(1\)&lt;/script&gt;\ndata: next line\n\n", body
    )
    assert body.index("event: status") < body.index("event: text") < body.index("event: end")
    assert "<script>" not in body


@pytest.mark.django_db(transaction=True)
def test_a_finished_job_streams_only_its_end(manager):
    job = Job.objects.create(prompt="p", max_new_tokens=8, status=Job.Status.DONE, decoding={"stream": True})
    assert stream(f"/stream/jobs/{job.pk}", manager) == (200, "event: end\ndata: \n\n")


@pytest.mark.django_db(transaction=True)
def test_only_managers_read_job_streams(outsider, manager):
    job = Job.objects.create(prompt="p", max_new_tokens=8, status=Job.Status.DONE)
    assert stream(f"/stream/jobs/{job.pk}", outsider)[0] == 403
    assert stream(f"/stream/jobs/{job.pk}")[0] == 302  # to the login page
    assert stream("/stream/jobs/999999", manager)[0] == 404


@pytest.mark.django_db(transaction=True)
def test_text_a_batch_sends_again_is_skipped_and_a_carriage_return_writes_no_field(manager):
    """A batch that runs again (a retry) publishes its text again: the reader skips what it has, by offset."""
    job = Job.objects.create(prompt="p", max_new_tokens=8, decoding={"stream": True})
    events = JobEvents(get_queue().redis, settings.EDGE_REDIS_PREFIX)
    events.publish_text({job.pk: TextEvent("Line A", 0, 2)})
    events.publish_text({job.pk: TextEvent("Line A", 0, 2)})  # the same batch again, from its start
    events.publish_text({job.pk: TextEvent("Line A stops\revent: end", 0, 5)})
    events.publish_text({job.pk: TextEvent("", 0, 8)})  # a token count alone
    jobs_ended([job])
    _, body = stream(f"/stream/jobs/{job.pk}", manager)
    texts = [event for event in body.split("\n\n") if event.startswith("event: text")]
    assert [text.split("data: ", 1)[1] for text in texts] == ["Line A", " stops\ndata: event: end"]
    assert [line for line in body.split("\n") if line.startswith("event:")].count("event: end") == 1
