"""Fixtures of the delivery tests: an output of a finished job, destinations, a receiver in a thread."""

import pytest
from django.utils import timezone

from edgeportal.delivery.models import Destination
from edgeportal.jobs.models import Job
from edgeportal.outputs.models import JobOutput
from tests.integration.receiver import Receiver

SECRET = "s3cret-for-tests"


@pytest.fixture(autouse=True)
def delivery_settings(settings):
    """Local receivers allowed (plain http to 127.0.0.1), short backoffs, three attempts."""
    settings.EDGE_DELIVERY_ALLOWED_SCHEMES = ["http", "https"]
    settings.EDGE_DELIVERY_ALLOWED_HOSTS = ["127.0.0.1:*", "*.plant.local"]
    settings.EDGE_DELIVERY_MAX_ATTEMPTS = 3
    settings.EDGE_DELIVERY_BACKOFF_MS = 100
    settings.EDGE_DELIVERY_BACKOFF_MAX_MS = 1000
    settings.EDGE_DELIVERY_GRACE_S = 5
    return settings


def make_output(*, name="ticket", status=JobOutput.Status.DONE, template=None, source=None, **fields) -> JobOutput:
    job = Job.objects.create(prompt="Line A reports a jam.", max_new_tokens=8, template=template, source=source,
                             has_outputs=True, status=Job.Status.DONE)  # fmt: skip
    defaults = {"language": "zh", "language_detected": "zh", "format": "text", "text": "A 线卡料，请检查。",
                "finished_at": timezone.now()}  # fmt: skip
    return JobOutput.objects.create(job=job, name=name, status=status, **{**defaults, **fields})


def make_destination(url="http://127.0.0.1:9/hooks", **fields) -> Destination:
    return Destination.objects.create(**{"name": f"dest-{Destination.objects.count()}", "url": url, "secret": SECRET,
                                         "timeout_s": 2, **fields})  # fmt: skip


@pytest.fixture
def receiver():
    """Start receivers in threads of this process; all stop at the end of the test."""
    started = []

    def start(**options) -> Receiver:
        server = Receiver(secret=SECRET, **options).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()
